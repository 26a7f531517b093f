"Tests of the embedded datasets (trustnas_nb.datasets)."
import re, subprocess, sys

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
from trustnas_nb import datasets as D
from trustnas_nb.datasets import (SPLITS, DATASETS, get_dataset, dataset_info, split_sizes, split_indices, Vocab,
                                  attribute_label_correlation, CAPTION_VOCAB, SENTIMENT_VOCAB, COLOURS, SHAPE_WORDS,
                                  SIZE_WORDS, POSITION_WORDS, POSITIVE_WORDS, NEGATIVE_WORDS, NEUTRAL_ADJECTIVES, NOUNS,
                                  TABLE_4_9_COUNTS, BRAIN_MRI_CLASSES, PAIR_TASKS, NOUN_SYNONYMS)

# small configurations keep the generated datasets quick
SMALL = {'digits': {}, 'objects10': dict(n=500, n_test=100), 'cluttered_digits': {}, 'biased_digits': {},
         'shapes_captions': dict(n=300, n_test=60), 'sentiment': dict(n=500, n_test=100),
         'brain_mri': dict(n=300, n_test=80), 'sentence_pairs': dict(n=300, n_test=60)}

def _clear_caches():
    for f in (D._cluttered_pool, D._biased_pool, D._captions_pool, D._sentiment_pool, D._digits, D._objects10_pool,
              D._objects10_sized, D._brain_mri_pool, D._brain_mri_sized, D._pairs_pool):
        f.cache_clear()

def _tensor_fields(ds):
    return {f: getattr(ds, f) for f in ds.fields}

# ---------------------------------------------------------------- splits

@pytest.mark.parametrize('name', DATASETS)
def test_splits_sizes_union_and_disjointness(name):
    info = dataset_info(name, **SMALL[name])
    dss = {s: get_dataset(name, s, seed=3, **SMALL[name]) for s in SPLITS}
    for s, ds in dss.items():
        assert len(ds) == info['split_sizes'][s] == len(ds.index), s
    st, sv, tr, te = (dss[s] for s in SPLITS)
    # train is exactly search_train followed by search_val: same pool indices and the same tensors
    assert torch.equal(tr.index, torch.cat([st.index, sv.index]))
    for f in tr.fields:
        assert torch.equal(getattr(tr, f), torch.cat([getattr(st, f), getattr(sv, f)])), f
    # no item twice, test disjoint from train, all together the whole pool
    n = sum(info['split_sizes'][s] for s in ('train', 'test'))
    assert len(set(tr.index.tolist())) == len(tr) and len(set(te.index.tolist())) == len(te)
    assert not set(tr.index.tolist()) & set(te.index.tolist())
    assert set(tr.index.tolist()) | set(te.index.tolist()) == set(range(n))
    assert not set(st.index.tolist()) & set(sv.index.tolist())

def test_split_sizes_arithmetic_and_errors():
    assert split_sizes(1797, 597) == dict(search_train=600, search_val=600, train=1200, test=597)
    assert split_sizes(11, 4) == dict(search_train=3, search_val=4, train=7, test=4)
    for bad in [dict(n=10, n_test=0), dict(n=10, n_test=9), dict(n=2, n_test=1)]:
        with pytest.raises(ValueError, match='n'): split_sizes(**bad)
    a, b = split_indices(100, 20, 0), split_indices(100, 20, 1)
    assert not np.array_equal(a['test'], b['test']) and np.array_equal(a['test'], split_indices(100, 20, 0)['test'])

# ---------------------------------------------------------------- shapes, dtypes, determinism

@pytest.mark.parametrize('name', DATASETS)
def test_shapes_dtypes_match_info(name):
    info = dataset_info(name, **SMALL[name])
    ds = get_dataset(name, 'search_val', seed=0, **SMALL[name])
    item = ds[0]
    assert len(item) == len(info['fields']) == len(ds.fields)
    for f, v in zip(info['fields'], item):
        assert tuple(v.shape) == tuple(info['shapes'][f]), f
    assert ds.num_classes == info['num_classes'] > 1
    if name in ('digits', 'objects10', 'cluttered_digits', 'biased_digits', 'shapes_captions', 'brain_mri'):
        assert ds.x.dtype == torch.float32 and ds.x.min() >= 0 and ds.x.max() <= 1 and ds.x.ndim == 4
    if hasattr(ds, 'y') and name != 'shapes_captions':
        assert ds.y.dtype == torch.long and 0 <= int(ds.y.min()) and int(ds.y.max()) < ds.num_classes
    # TensorDataset view agrees with indexing
    td = ds.tensor_dataset()
    assert len(td) == len(ds) and all(torch.equal(a, b) for a, b in zip(td[5], ds[5]))

@pytest.mark.parametrize('name', DATASETS)
def test_determinism_from_seed(name):
    a = _tensor_fields(get_dataset(name, 'train', seed=7, **SMALL[name]))
    _clear_caches()                                    # regenerate from scratch, not from the in-process cache
    b = _tensor_fields(get_dataset(name, 'train', seed=7, **SMALL[name]))
    c = _tensor_fields(get_dataset(name, 'train', seed=8, **SMALL[name]))
    for f in a:
        assert torch.equal(a[f], b[f]), f
    assert any(not torch.equal(a[f], c[f]) for f in a)

def test_cached_pools_are_not_shared():
    a = get_dataset('cluttered_digits', 'test', seed=0)
    a.x.zero_(); a.mask.zero_()
    b = get_dataset('cluttered_digits', 'test', seed=0)
    assert b.x.max() > 0.5 and b.mask.any()

def test_module_import_does_not_import_sklearn():
    code = "import sys, trustnas_nb.datasets; assert 'sklearn' not in sys.modules, 'sklearn imported at import time'"
    subprocess.run([sys.executable, '-c', code], check=True)

# ---------------------------------------------------------------- digits

def test_digits_are_sklearn_digits_and_upsampling():
    from sklearn.datasets import load_digits
    d = load_digits()
    ds = get_dataset('digits', 'test', seed=1)
    idx = ds.index.numpy()
    assert np.allclose(ds.x[:, 0].numpy(), d.images[idx] / 16.0) and np.array_equal(ds.y.numpy(), d.target[idx])
    big = get_dataset('digits', 'test', seed=1, image_size=32, channels=3)
    assert big.x.shape == (597, 3, 32, 32) and torch.equal(big.index, ds.index) and torch.equal(big.y, ds.y)
    assert torch.equal(big.x[:, 0], big.x[:, 1]) and torch.equal(big.x[:, 1], big.x[:, 2])
    # bilinear upsampling keeps the image (up to smoothing): pooled back it correlates with the original, same ink
    back = torch.nn.functional.avg_pool2d(big.x[:, :1], 4)
    assert torch.corrcoef(torch.stack([back.flatten(), ds.x.flatten()]))[0, 1] > 0.95
    assert abs(float(big.x.mean() - ds.x.mean())) < 0.02
    assert len(get_dataset('digits', 'train', n_test=497)) == 1300

# ---------------------------------------------------------------- objects10

def test_objects10_shapes_dtypes_range_and_info():
    ds = get_dataset('objects10', 'test', seed=1, n=500, n_test=100)
    assert ds.x.shape == (100, 3, 32, 32) and ds.x.dtype == torch.float32 and ds.y.dtype == torch.long
    assert ds.x.min() >= 0 and ds.x.max() <= 1 and ds.x.std() > 0.1                   # colour images, not blank
    assert ds.hardness.shape == (100,) and 0 <= ds.hardness.min() and ds.hardness.max() <= D.Objects10.defaults['difficulty']
    assert ds.classes == D.OBJECT_SHAPES and len(ds.classes) == 10 and ds.num_classes == 10
    small = get_dataset('objects10', 'test', seed=1, n=500, n_test=100, image_size=16)
    assert small.x.shape == (100, 3, 16, 16) and torch.equal(small.y, ds.y) and torch.equal(small.index, ds.index)
    assert torch.allclose(small.x, D.resize_images(ds.x, 16))
    i = dataset_info('objects10')
    assert i['stands_in_for'] == 'CIFAR-10' and i['shapes'] == {'x': (3, 32, 32), 'y': ()} and i['num_classes'] == 10
    assert i['split_sizes'] == dict(search_train=2500, search_val=2500, train=5000, test=1000)
    assert i['classes'] == list(D.OBJECT_SHAPES) and i['dataset_class'] == 'Objects10'
    assert i['params'] == D.Objects10.defaults
    assert dataset_info('objects10', image_size=16, n=1000, n_test=200)['shapes']['x'] == (3, 16, 16)

def test_objects10_class_balance_and_colour_independence():
    pool = D._objects10_pool(0, 1500, 0.5, 1, 0.15, 0.03, 10.0)
    counts = torch.bincount(pool['y'], minlength=10)
    assert counts.sum() == 1500 and counts.max() - counts.min() <= 1                   # balanced within one image
    assert torch.equal(torch.bincount(pool['y'][:1000]), torch.full((10,), 100))       # each full block exactly
    # the first block does not depend on the pool size
    first = D._objects10_pool(0, 1000, 0.5, 1, 0.15, 0.03, 10.0)
    assert torch.equal(first['x'], pool['x'][:1000]) and torch.equal(first['y'], pool['y'][:1000])
    # the class is not in the mean colour
    mean_rgb = torch.stack([pool['x'][pool['y'] == k].mean((0, 2, 3)) for k in range(10)])
    assert (mean_rgb - mean_rgb.mean(0)).abs().max() < 0.06

def test_objects10_determinism_and_knobs():
    kw = dict(n=300, n_test=60)
    a = get_dataset('objects10', 'search_val', seed=5, **kw)
    _clear_caches()
    b = get_dataset('objects10', 'search_val', seed=5, **kw)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.hardness, b.hardness)
    c = get_dataset('objects10', 'search_val', seed=6, **kw)
    assert (a.x - c.x).abs().mean() > 0.1
    # every knob changes the images; difficulty sets the range of the hardness
    for knob in [dict(difficulty=1.0), dict(n_clutter=4), dict(p_occlusion=1.0), dict(noise=0.2), dict(max_rotation=90.0)]:
        assert not torch.equal(get_dataset('objects10', 'search_val', seed=5, **kw, **knob).x, a.x), knob
    assert get_dataset('objects10', 'test', seed=0, **kw, difficulty=0.0).hardness.max() == 0
    rough = lambda x: (x[..., 1:] - x[..., :-1]).abs().mean()
    clean = get_dataset('objects10', 'test', seed=0, **kw, noise=0.0, n_clutter=0, p_occlusion=0.0)
    assert rough(get_dataset('objects10', 'test', seed=0, **kw, noise=0.2).x) > 2 * rough(clean.x)

def test_objects10_cached_pool_not_shared():
    a = get_dataset('objects10', 'test', seed=0, n=300, n_test=60)
    a.x.zero_()
    assert get_dataset('objects10', 'test', seed=0, n=300, n_test=60).x.max() > 0.5

# ---------------------------------------------------------------- cluttered digits

def test_cluttered_masks_consistent_with_the_digit():
    S, ds_, thr = 32, 12, 0.25
    cd = get_dataset('cluttered_digits', 'train', seed=2, noise=0.0, canvas_size=S, digit_size=ds_, mask_threshold=thr)
    digits = D.digits_arrays(ds_)[0][cd.index, 0]                       # the clean upsampled digits
    yy = D.digits_arrays(8)[1][cd.index]
    assert torch.equal(cd.y, yy)
    inbox = torch.zeros_like(cd.mask[:, 0])
    for i, (t, l, b, r) in enumerate(cd.boxes.tolist()):
        assert 0 <= t < b <= S and 0 <= l < r <= S and b - t == ds_ and r - l == ds_
        inbox[i, t:b, l:r] = True
        # inside the box: exactly the digit (no clutter there); mask = digit pixels above the threshold
        assert torch.equal(cd.x[i, 0, t:b, l:r], digits[i])
        assert torch.equal(cd.mask[i, 0, t:b, l:r], digits[i] > thr)
    m = cd.mask[:, 0]
    assert not (m & ~inbox).any()                                       # the mask lies inside the digit's box
    assert m.sum((1, 2)).min() > 5                                      # and is never empty
    # every pixel of the digit above the threshold is in the mask
    bright_digit = (cd.x[:, 0] > thr) & inbox
    assert torch.equal(bright_digit, m)
    # clutter is present and lies outside the mask
    clutter = (cd.x[:, 0] > 0.3) & ~inbox
    assert clutter.sum((1, 2)).float().mean() > 10 and not (clutter & m).any()

def test_cluttered_default_noise_and_clutter_mostly_outside():
    cd = get_dataset('cluttered_digits', 'test', seed=0)
    digits = D.digits_arrays(12)[0][cd.index, 0]
    m = cd.mask[:, 0]
    clean = torch.stack([torch.nn.functional.pad(digits[i], (l, 32 - r, t, 32 - b))
                         for i, (t, l, b, r) in enumerate(cd.boxes.tolist())])   # the digit alone on the canvas
    other = (cd.x[:, 0] > 0.5) & (clean <= 0.5)                          # bright pixels that are not the digit: clutter
    assert other.sum() > 5 * len(cd)                                    # there is clutter ...
    assert (other & m).sum() < 0.05 * other.sum()                        # ... and it lies (mostly) outside the mask
    # the noise is small: inside the boxes the image stays close to the clean digit
    err = torch.stack([(cd.x[i, 0, t:b, l:r] - digits[i]).abs().mean() for i, (t, l, b, r) in enumerate(cd.boxes.tolist())])
    assert err.mean() < 0.06
    assert get_dataset('cluttered_digits', 'test', seed=0, channels=3).x.shape == (597, 3, 32, 32)

def test_cluttered_without_clutter_is_only_the_digit():
    cd = get_dataset('cluttered_digits', 'search_train', seed=0, n_clutter=0, noise=0.0)
    for i, (t, l, b, r) in enumerate(cd.boxes[:50].tolist()):
        outside = cd.x[i, 0].clone(); outside[t:b, l:r] = 0
        assert outside.abs().max() == 0

# ---------------------------------------------------------------- biased digits

@pytest.mark.parametrize('bias', [0.0, 0.5, 0.9, 1.0])
def test_biased_correlation_train_and_test(bias):
    for split in ('search_train', 'search_val', 'train'):
        ds = get_dataset('biased_digits', split, seed=4, bias=bias)
        assert abs(attribute_label_correlation(ds.a, ds.y) - bias) < 0.02, (split, bias)
    te = get_dataset('biased_digits', 'test', seed=4, bias=bias)
    assert abs(attribute_label_correlation(te.a, te.y)) < 0.02
    for c in (0, 1):                                                    # each label half red, half blue in test
        assert abs(te.a[te.y == c].float().mean() - 0.5) < 0.01

def test_biased_labels_and_tint():
    ds = get_dataset('biased_digits', 'train', seed=0, bias=0.5, image_size=8, tint_jitter=0.0)
    from sklearn.datasets import load_digits
    digit = torch.as_tensor(load_digits().target[ds.index.numpy()])
    assert torch.equal(ds.digit, digit) and torch.equal(ds.y, (digit >= 5).long())
    ink = ds.x.sum((2, 3))                                              # (N, 3) channel totals
    assert ((ink[:, 0] > ink[:, 2]) == (ds.a == 0)).all()               # red ink for a=0, blue for a=1
    # with no jitter, the image is the grey digit times the tint
    grey = D.digits_arrays(8)[0][ds.index]
    tint = torch.tensor(list(D.TINTS.values()))[ds.a]
    assert torch.allclose(ds.x, grey * tint[:, :, None, None], atol=1e-6)
    assert ds[0][2] == ds.a[0] and len(ds[0]) == 3

# ---------------------------------------------------------------- shapes captions

_SHAPE_OF = {w: s for s, ws in SHAPE_WORDS.items() for w in ws}
_SIZE_OF = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_POS_PHRASES = sorted(((tuple(p.split()), cell) for cell, ps in POSITION_WORDS.items() for p in ps), key=lambda t: -len(t[0]))

def _phrases(toks):
    "(start, end, colour, shape, size-or-None) for every 'a [size] colour shape' in a tokenised caption."
    out = []
    for i, w in enumerate(toks):
        if w in COLOURS:
            assert i + 1 < len(toks) and toks[i + 1] in _SHAPE_OF, ('colour word not followed by a shape', toks)
            size = _SIZE_OF.get(toks[i - 1]) if i > 0 else None
            out.append((i - (size is not None), i + 2, w, _SHAPE_OF[toks[i + 1]], size))
    return out

def _positions(toks):
    "(start, end, cell) of every position phrase (longest match first, no overlaps)."
    taken, out = set(), []
    for ph, cell in _POS_PHRASES:
        for i in range(len(toks) - len(ph) + 1):
            if tuple(toks[i:i + len(ph)]) == ph and not taken & set(range(i, i + len(ph))):
                out.append((i, i + len(ph), cell)); taken |= set(range(i, i + len(ph)))
    return sorted(out)

def test_captions_true_to_the_scene():
    ds = get_dataset('shapes_captions', 'train', seed=5, **SMALL['shapes_captions'])
    n_rel = n_pos = 0
    for caps, scene in zip(ds.captions, ds.scenes):
        objs = {(o['colour'], o['shape']): o for o in scene}
        assert len(objs) == len(scene)                                  # colour+shape identifies an object
        assert len(caps) >= 5 and len(set(caps)) == len(caps)
        for cap in caps:
            toks = cap.split()
            nps = _phrases(toks)
            assert nps, cap                                             # mentions colour & shape of something
            for s, e, col, shp, size in nps:
                assert (col, shp) in objs, (cap, scene)                 # ... that is actually in the scene
                if size is not None: assert objs[(col, shp)]['size'] == size, (cap, scene)
            # relations read off the grid cells
            for rel, (dr, dc) in {'to the left of': (0, -1), 'to the right of': (0, 1), 'above': (-1, 0), 'below': (1, 0)}.items():
                if f' {rel} ' in f' {cap} ':
                    a, b = objs[nps[0][2:4]], objs[nps[1][2:4]]
                    n_rel += 1
                    if dc: assert np.sign(a['col'] - b['col']) == dc, (cap, scene)
                    if dr: assert np.sign(a['row'] - b['row']) == dr, (cap, scene)
            # each position phrase describes the cell of the object it is attached to
            for s, e, cell in _positions(toks):
                n_pos += 1
                if s == 0: o = nps[0]                                   # "in the center there is a red disc"
                else: o = max((p for p in nps if p[1] <= s), key=lambda p: p[1])   # "a red disc in the center"
                ob = objs[o[2:4]]
                assert (ob['row'], ob['col']) == cell, (cap, scene)
    assert n_rel > 50 and n_pos > 200                                   # the checks above did run

def test_scene_rendering_matches_metadata():
    ds = get_dataset('shapes_captions', 'test', seed=0, **SMALL['shapes_captions'])
    H = ds.x.shape[-1]
    for img, scene in zip(ds.x, ds.scenes):
        for o in scene:
            px = img[:, min(int(o['cy']), H - 1), min(int(o['cx']), H - 1)]
            assert (px - torch.tensor(COLOURS[o['colour']])).abs().max() < 0.2, o
        lit = (img.sum(0) > 0.05).float().mean()                        # shapes cover some, not all, of the image
        assert 0.01 < lit < 0.6

def test_caption_tokens_and_vocab_roundtrip():
    ds = get_dataset('shapes_captions', 'search_train', seed=0, **SMALL['shapes_captions'])
    v = ds.vocab
    assert v.itos[:4] == ['<pad>', '<bos>', '<eos>', '<unk>'] and len(v) == ds.num_classes
    assert (ds.tokens[:, :, 0] == v.bos_id).all() and not (ds.tokens == v.unk_id).any()
    for i in range(len(ds)):
        for j, cap in enumerate(ds.captions[i]):
            t = ds.tokens[i, j]
            assert v.decode(t) == cap
            assert v.encode(cap, max_len=t.numel()) == t.tolist()
            n = len(cap.split()) + 2
            assert t[n - 1] == v.eos_id and (t[n:] == v.pad_id).all()
    assert get_dataset('shapes_captions', 'test', seed=0, n=300, n_test=60, n_captions=8).tokens.shape[1] == 8

def test_vocab_basics():
    v = Vocab.build(['The cat sat.', 'the dog, the cat'], min_freq=1)
    assert v.itos[4] == 'the' and v.decode(v.encode('the cat sat .')) == 'the cat sat .'
    assert v.decode(v.encode('a cat')) == '<unk> cat' and v['zebra'] == v.unk_id
    assert v.decode(v.encode('the cat', max_len=6), skip_special=False) == '<bos> the cat <eos> <pad> <pad>'
    assert Vocab.tokenize("It's a black-and-white film!") == ["it's", 'a', 'black-and-white', 'film', '!']
    with pytest.raises(ValueError, match='max_len'): v.encode('the cat sat', max_len=3)
    with pytest.raises(ValueError, match='99'): v.decode([99])
    with pytest.raises(ValueError): Vocab(['two words'])
    assert len(Vocab.build(['a a b'], min_freq=2)) == 5

# ---------------------------------------------------------------- sentiment

def test_sentiment_labels_positions_and_filler():
    ds = get_dataset('sentiment', 'train', seed=6, **SMALL['sentiment'])
    v = ds.vocab
    pos_ids = {v[w] for w in POSITIVE_WORDS}; neg_ids = {v[w] for w in NEGATIVE_WORDS}
    L = ds.tokens.shape[1]
    assert ds.mask.shape == ds.tokens.shape == (len(ds), L) and ds.mask.dtype == torch.bool
    for i in range(len(ds)):
        n = int(ds.lengths[i]); toks = ds.tokens[i].tolist(); where = ds.mask[i].nonzero().flatten().tolist()
        assert where and max(where) < n                                 # positions in range, at least one
        assert all(t != v.pad_id for t in toks[:n]) and all(t == v.pad_id for t in toks[n:])
        sign = sum(1 if toks[p] in pos_ids else -1 if toks[p] in neg_ids else 0 for p in where)
        assert all(toks[p] in pos_ids | neg_ids for p in where)         # the marked words are sentiment words
        assert (sign > 0) == bool(ds.y[i]) and sign != 0                # label = sign of the marked words
        assert not any(toks[p] in pos_ids | neg_ids for p in range(n) if p not in where)   # filler is neutral
        assert v.decode(ds.tokens[i]) == ds.sentences[i]
        assert all(int(ds.polarity[i, p]) == (1 if toks[p] in pos_ids else -1) for p in where)
    assert abs(ds.y.float().mean() - 0.5) < 0.07

def test_sentiment_contrast_words():
    mixed = lambda ds: ((ds.polarity == 1).any(1) & (ds.polarity == -1).any(1)).sum()
    assert mixed(get_dataset('sentiment', 'train', seed=0, n=500, n_test=100, p_contrast=0.0)) == 0
    assert mixed(get_dataset('sentiment', 'train', seed=0, n=500, n_test=100, p_contrast=1.0)) > 20

# ---------------------------------------------------------------- errors

@pytest.mark.parametrize('call, needle', [
    (lambda: get_dataset('mnist'), "'mnist'"),
    (lambda: get_dataset('digits', 'val'), "'val'"),
    (lambda: get_dataset('digits', seed=-1), 'seed'),
    (lambda: get_dataset('digits', image_size=-8), 'image_size'),
    (lambda: get_dataset('digits', image_size=8.5), 'image_size'),
    (lambda: get_dataset('digits', channels=2), 'channels'),
    (lambda: get_dataset('digits', n_test=0), 'n_test'),
    (lambda: get_dataset('digits', n_test=5000), 'n_test'),
    (lambda: get_dataset('digits', colour='red'), 'colour'),
    (lambda: get_dataset('biased_digits', bias=1.2), 'bias'),
    (lambda: get_dataset('biased_digits', bias=-0.1), 'bias'),
    (lambda: get_dataset('biased_digits', bias=float('nan')), 'bias'),
    (lambda: get_dataset('cluttered_digits', canvas_size=16), 'canvas_size'),
    (lambda: get_dataset('cluttered_digits', noise=-0.1), 'noise'),
    (lambda: get_dataset('shapes_captions', n=-5), "n = -5"),
    (lambda: get_dataset('shapes_captions', n_captions=9), 'n_captions'),
    (lambda: get_dataset('shapes_captions', max_len=10), 'max_len'),
    (lambda: get_dataset('sentiment', p_contrast=2), 'p_contrast'),
    (lambda: get_dataset('sentiment', max_len=22), 'max_len = 22'),      # the longest sentence has 23 words
    (lambda: get_dataset('brain_mri', image_size=4), 'image_size = 4'),
    (lambda: get_dataset('brain_mri', image_size=31.5), 'image_size = 31.5'),
    (lambda: get_dataset('brain_mri', difficulty=2), 'difficulty = 2'),
    (lambda: get_dataset('brain_mri', difficulty=float('nan')), 'difficulty = nan'),
    (lambda: get_dataset('brain_mri', noise=-0.1), 'noise = -0.1'),
    (lambda: get_dataset('brain_mri', n=5), 'n = 5'),
    (lambda: get_dataset('brain_mri', n=100, n_test=100), 'n_test = 100'),
    (lambda: get_dataset('brain_mri', channels=3), 'channels'),
    (lambda: get_dataset('sentence_pairs', task='nli'), "task 'nli'"),
    (lambda: get_dataset('sentence_pairs', task=None), 'task None'),
    (lambda: get_dataset('sentence_pairs', max_len=20), 'max_len = 20'),
    (lambda: get_dataset('sentence_pairs', n=2), 'n = 2'),
    (lambda: dataset_info('sentence_pairs', task='qqp'), "'qqp'"),
    (lambda: get_dataset('objects10', difficulty=1.5), 'difficulty = 1.5'),
    (lambda: get_dataset('objects10', n_clutter=-1), 'n_clutter = -1'),
    (lambda: get_dataset('objects10', n_clutter=2.5), 'n_clutter = 2.5'),
    (lambda: get_dataset('objects10', p_occlusion='high'), "p_occlusion = 'high'"),
    (lambda: get_dataset('objects10', noise=0.9), 'noise = 0.9'),
    (lambda: get_dataset('objects10', max_rotation=-5), 'max_rotation = -5'),
    (lambda: get_dataset('objects10', image_size=4), 'image_size = 4'),
    (lambda: get_dataset('objects10', n=5), 'n = 5'),
    (lambda: get_dataset('objects10', n=100, n_test=99), 'n_test = 99'),
    (lambda: get_dataset('objects10', channels=1), 'channels'),
    (lambda: dataset_info('coco'), "'coco'"),
    (lambda: dataset_info('sentiment', size=3), 'size'),
])
def test_bad_inputs_raise_valueerror(call, needle):
    with pytest.raises(ValueError, match=re.escape(needle)) as e:
        call()
    assert 'expected' in str(e.value) or 'valid' in str(e.value)

def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError) as e: get_dataset('cifar10')
    assert all(n in str(e.value) for n in DATASETS)
    with pytest.raises(ValueError) as e: get_dataset('digits', 'validation')
    assert all(s in str(e.value) for s in SPLITS)

def test_dataset_info_contents():
    i = dataset_info('digits', image_size=32, channels=3)
    assert i['shapes']['x'] == (3, 32, 32) and i['num_classes'] == 10 and 'MNIST' in i['stands_in_for']
    assert dataset_info('biased_digits')['attributes'] == ['red', 'blue']
    assert 'COCO' in dataset_info('shapes_captions')['stands_in_for'] and 'SST-2' in dataset_info('sentiment')['stands_in_for']
    assert dataset_info('objects10')['stands_in_for'] == 'CIFAR-10'

# ---------------------------------------------------------------- brain MRI

def _brain_geometry(ds):
    "Per slice: lesion-mask centroid relative to the brain's centroid, in units of the brain's half width / half height."
    m, br = ds.mask[:, 0].float(), ds.brain[:, 0].float()
    S = m.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing='ij')
    def centroid(w):
        s = w.sum((1, 2)).clamp_min(1e-9); return (w * xx).sum((1, 2)) / s, (w * yy).sum((1, 2)) / s
    (bx, by), (mx, my) = centroid(br), centroid(m)
    half_w, half_h = br.amax(1).sum(1) / 2, br.amax(2).sum(1) / 2
    return (mx - bx) / half_w, (my - by) / half_h

def test_brain_mri_classes_and_table_4_9_proportions():
    from trustnas_nb.loaders import BRAIN_TUMOR_CLASSES
    assert BRAIN_MRI_CLASSES == BRAIN_TUMOR_CLASSES == tuple(TABLE_4_9_COUNTS) == D.BrainMRI.classes
    assert TABLE_4_9_COUNTS == {'glioma': (826, 100), 'meningioma': (822, 115), 'notumor': (395, 105), 'pituitary': (827, 74)}
    train_share, test_share = (np.array([c[k] for c in TABLE_4_9_COUNTS.values()], float) for k in (0, 1))
    train_share /= train_share.sum(); test_share /= test_share.sum()
    dss = {s: get_dataset('brain_mri', s, seed=1) for s in SPLITS}
    for s, ds in dss.items():
        share = np.bincount(ds.y.numpy(), minlength=4) / len(ds)
        assert np.abs(share - (test_share if s == 'test' else train_share)).max() < 0.005, (s, share)
    # the shift of Table 4.9 is kept: healthy brains are 14 % of training and 27 % of test
    assert (dss['train'].y == 2).float().mean() < 0.15 < 0.25 < (dss['test'].y == 2).float().mean()
    # at the Kaggle set's size the test split has exactly Table 4.9's test counts, training within one per class
    y, sp = D._brain_mri_labels(3264, 394, seed=0), split_indices(3264, 394, seed=0)
    assert np.bincount(y[sp['test']]).tolist() == [100, 115, 105, 74]
    assert np.abs(np.bincount(y[sp['train']]) - [826, 822, 395, 827]).max() <= 1

def test_brain_mri_masks_where_the_lesions_are():
    ds = get_dataset('brain_mri', 'train', seed=0)
    assert ds.x.shape == (960, 1, 32, 32) and ds.mask.shape == ds.brain.shape == ds.x.shape and ds.mask.dtype == torch.bool
    has = ds.mask.flatten(1).any(1)
    assert not has[ds.y == 2].any() and has[ds.y != 2].all()          # notumor: empty; tumours: non-empty
    assert not (ds.mask & ~ds.brain).any()                             # lesions lie inside the brain
    assert not ds.brain[..., [0, -1], :].any() and not ds.brain[..., :, [0, -1]].any()   # the head is inside the image
    # the head is brighter than the background, the lesions are brighter than the rest of the brain on average
    bg = ~torch.nn.functional.max_pool2d(ds.brain.float(), 7, 1, 3).bool()
    assert ds.x[ds.brain].mean() > ds.x[bg].mean() + 0.2
    dx, dy = _brain_geometry(ds)
    g, me, pi = (ds.y == BRAIN_MRI_CLASSES.index(c) for c in ('glioma', 'meningioma', 'pituitary'))
    # pituitary: central and low (the sella); meningioma: on the periphery, touching the skull; glioma: in a hemisphere
    assert (dx[pi].abs() < 0.25).all() and ((dy[pi] > 0.3) & (dy[pi] < 0.7)).all()
    radius = (dx ** 2 + dy ** 2).sqrt()
    assert (radius[me] > 0.7).all() and (radius[g] < 0.8).all() and radius[me].mean() > radius[pi].mean() + 0.25
    reach = torch.nn.functional.max_pool2d(ds.mask.float(), 3, 1, 1).bool() & ~ds.brain   # one pixel beyond the mask
    touches = reach.flatten(1).any(1)
    assert touches[me].all() and touches[pi].float().mean() == 0 and touches[g].float().mean() < 0.5
    assert (dx[g].abs() > 0.15).float().mean() > 0.95 and dx[g].abs().min() > 0.05
    # pituitary lesions are the smallest, gliomas the largest (on average)
    area = ds.mask.flatten(1).sum(1).float()
    assert area[pi].mean() < area[me].mean() < area[g].mean()

def test_brain_mri_lesion_appearance():
    ds = get_dataset('brain_mri', 'test', seed=2, n=300, n_test=150, image_size=64, difficulty=0.0, noise=0.0)
    m = ds.mask.float()
    core = -torch.nn.functional.max_pool2d(-m, 5, 1, 2)                 # the mask eroded by 2 px
    rim = m - (-torch.nn.functional.max_pool2d(-m, 3, 1, 1))            # its outermost pixels
    mean = lambda w: (ds.x * w).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp_min(1)
    tissue = mean(ds.brain.float() - m)
    g = ds.y == 0
    assert (mean(rim) - mean(core))[g].median() > 0.3                   # glioma: bright rim, darker core
    for k in (1, 3):                                                    # meningioma, pituitary: bright, homogeneous
        i = ds.y == k
        assert ((mean(m) - tissue)[i] > 0.1).float().mean() > 0.9

def test_brain_mri_sizes_are_the_same_slices():
    kw = dict(n=300, n_test=80, noise=0.0)
    a = {s: get_dataset('brain_mri', 'search_val', seed=3, image_size=s, **kw) for s in (16, 32, 64)}
    for s, ds in a.items():
        assert ds.x.shape == (110, 1, s, s) and ds.mask.shape == (110, 1, s, s) and torch.equal(ds.y, a[32].y)
        assert ds.x.min() >= 0 and ds.x.max() <= 1
        assert torch.equal(ds.mask.flatten(1).any(1), ds.y != 2)         # tiny lesions survive at 16 px
    pool = torch.nn.functional.avg_pool2d
    assert torch.allclose(pool(a[64].x, 2), a[32].x, atol=1e-5) and torch.allclose(pool(a[64].x, 4), a[16].x, atol=1e-5)
    noisy = get_dataset('brain_mri', 'search_val', seed=3, image_size=32, n=300, n_test=80)
    bg = ~torch.nn.functional.max_pool2d(noisy.brain.float(), 9, 1, 4).bool()
    assert 0.01 < noisy.x[bg].mean() < 0.1 and a[32].x[bg].max() < 0.02   # Rician noise lifts the background
    assert torch.equal(noisy.mask, a[32].mask)

def test_brain_mri_difficulty_knob_and_hardness():
    easy, hard = (get_dataset('brain_mri', 'train', seed=0, n=300, n_test=80, difficulty=d) for d in (0.0, 1.0))
    assert easy.hardness.max() == 0 and 0 < hard.hardness.max() <= 1 and torch.equal(easy.y, hard.y)
    assert not torch.equal(easy.x, hard.x)
    contrast = lambda ds: ((ds.x * ds.mask).sum((1, 2, 3)) / ds.mask.sum((1, 2, 3)).clamp_min(1)
                           - (ds.x * (ds.brain & ~ds.mask)).sum((1, 2, 3)) / (ds.brain & ~ds.mask).sum((1, 2, 3)))[ds.y != 2]
    assert contrast(easy).mean() > contrast(hard).mean() + 0.05

def _random_feature_accuracy(difficulty):
    "Test accuracy at 16×16 of a ridge classifier on fixed random 3×3 convolution features (max/avg pooled to 4×4)."
    tr, te = (get_dataset('brain_mri', s, seed=0, image_size=16, difficulty=difficulty) for s in ('train', 'test'))
    w = torch.randn(48, 1, 3, 3, generator=torch.Generator().manual_seed(0)); w -= w.mean((1, 2, 3), keepdim=True)
    def feats(x):
        h = torch.relu(torch.nn.functional.conv2d(x, w, padding=1))
        return torch.cat([torch.nn.functional.adaptive_max_pool2d(h, 4).flatten(1),
                          torch.nn.functional.adaptive_avg_pool2d(h, 4).flatten(1)], 1)
    X = feats(tr.x); mu, sd = X.mean(0), X.std(0) + 1e-3
    A = lambda Z: torch.cat([(Z - mu) / sd, torch.ones(len(Z), 1)], 1)
    W = torch.linalg.solve(A(X).T @ A(X) + 30 * torch.eye(X.shape[1] + 1), A(X).T @ torch.nn.functional.one_hot(tr.y, 4).float())
    return float(((A(feats(te.x)) @ W).argmax(1) == te.y).float().mean())

def test_brain_mri_learnable_but_not_trivial():
    chance = max(c[1] for c in TABLE_4_9_COUNTS.values()) / sum(c[1] for c in TABLE_4_9_COUNTS.values())   # 0.29
    accs = {d: _random_feature_accuracy(d) for d in (0.0, 0.5, 1.0)}
    assert accs[0.5] > chance + 0.15 and accs[0.0] < 0.95, accs
    assert accs[0.0] > accs[0.5] > accs[1.0], accs

# ---------------------------------------------------------------- sentence pairs

_POS, _NEG = set(POSITIVE_WORDS), set(NEGATIVE_WORDS)
_SENSE = {w: i for i, w in enumerate(NOUNS)}
for _group in NOUN_SYNONYMS:
    for _w in _group: _SENSE[_w] = _SENSE[_group[0]]

def _bag(words):
    "What a sentence says, up to synonyms and order: sentiment polarities, noun senses, neutral adjectives, the rest."
    from collections import Counter
    return dict(pos=sum(w in _POS for w in words), neg=sum(w in _NEG for w in words),
                nouns=Counter(_SENSE[w] for w in words if w in _SENSE),
                neutral=Counter(w for w in words if w in NEUTRAL_ADJECTIVES))

@pytest.mark.parametrize('task', list(PAIR_TASKS))
def test_pairs_tokens_padding_and_vocab(task):
    ds = get_dataset('sentence_pairs', 'train', seed=4, n=600, n_test=100, task=task)
    v = ds.vocab
    assert v is SENTIMENT_VOCAB and v.itos[0] == '<pad>' and v.pad_id == 0
    assert ds.tokens.shape == ds.mask.shape == ds.polarity.shape == (500, 2, 24) and ds.tokens.dtype == torch.long
    assert ds.mask.dtype == torch.bool and ds.lengths.shape == (500, 2) and len(ds.sentences) == 500
    assert ds.classes == PAIR_TASKS[task] and ds.num_classes == len(PAIR_TASKS[task]) and ds.params['task'] == task
    assert 4 <= int(ds.tokens.max()) < len(v) and not ((ds.tokens > 0) & (ds.tokens < 4)).any()   # no <bos>/<eos>/<unk>
    pos = torch.arange(24)
    inside = pos[None, None] < ds.lengths[:, :, None]
    assert torch.equal(ds.tokens != v.pad_id, inside)                  # words up to the length, <pad> after it
    assert not (ds.mask & ~inside).any() and ds.mask.flatten(1).any(1).all()
    assert ds.lengths.max() <= D.SentencePairs.MAX_SENTENCE == 23
    for i in range(len(ds)):
        for s in (0, 1):
            words = ds.sentences[i][s].split()
            assert all(w in v for w in words) and v.decode(ds.tokens[i, s]) == ds.sentences[i][s]
            pol = [1 if w in _POS else -1 if w in _NEG else 0 for w in words]
            assert ds.polarity[i, s, :len(words)].tolist() == pol
    counts = torch.bincount(ds.y, minlength=ds.num_classes).float() / len(ds)
    assert (counts - 1 / ds.num_classes).abs().max() < 0.06             # balanced (exactly so over the pool)
    assert torch.equal(torch.bincount(D._pairs_pool(4, 600, 24, task)['y']), torch.full((ds.num_classes,), 600 // ds.num_classes))

def test_paraphrase_construction():
    ds = get_dataset('sentence_pairs', 'train', seed=5, n=600, n_test=100, task='paraphrase')
    kinds, reordered = {'flip': 0, 'noun': 0}, 0
    for i in range(len(ds)):
        a, b = (s.split() for s in ds.sentences[i])
        ba, bb = _bag(a), _bag(b)
        ea, eb = ([w for w, m in zip(ws, ds.mask[i, s].tolist()) if m] for s, ws in enumerate((a, b)))
        assert len(a) == len(b) and ba['neutral'] == bb['neutral'] and ba['pos'] + ba['neg'] >= 1
        if ds.y[i] == 1:      # same meaning: same polarities, same noun senses; the evidence = the sentiment words
            assert (ba['pos'], ba['neg'], ba['nouns']) == (bb['pos'], bb['neg'], bb['nouns']), (a, b)
            assert ea == [w for w in a if w in _POS | _NEG] and eb == [w for w in b if w in _POS | _NEG]
            reordered += a[:3] != b[:3]
        else:                 # exactly one change: a sentiment word flipped, or a noun of another sense
            assert len(ea) == len(eb) == 1, (a, b)
            wa, wb = ea[0], eb[0]
            if wa in _POS | _NEG:
                kinds['flip'] += 1
                assert (wa in _POS) != (wb in _POS) and wb in _POS | _NEG
                assert (bb['pos'] - ba['pos'], bb['neg'] - ba['neg']) in ((1, -1), (-1, 1)) and ba['nouns'] == bb['nouns']
            else:
                kinds['noun'] += 1
                assert wa in _SENSE and wb in _SENSE and _SENSE[wa] != _SENSE[wb]
                assert (ba['pos'], ba['neg']) == (bb['pos'], bb['neg']) and ba['nouns'] != bb['nouns']
                assert sum((ba['nouns'] - bb['nouns']).values()) == 1
    assert min(kinds.values()) > 80 and reordered > 50
    # neither sentence alone gives the label away: the share of positive words is the same in both classes
    share = lambda k, s: np.mean([_bag(ds.sentences[i][s].split())['pos'] for i in range(len(ds)) if ds.y[i] == k])
    assert abs(share(0, 1) - share(1, 1)) < 0.2 and abs(share(0, 0) - share(1, 0)) < 0.2

def test_entailment_construction():
    ds = get_dataset('sentence_pairs', 'test', seed=6, n=900, n_test=450, task='entailment')
    assert ds.classes == ('entailment', 'neutral', 'contradiction')
    for i in range(len(ds)):
        a, b = (s.split() for s in ds.sentences[i])
        ea, eb = ([w for w, m in zip(ws, ds.mask[i, s].tolist()) if m] for s, ws in enumerate((a, b)))
        assert 4 <= len(b) <= 7 and len(a) > len(b)
        windows = [a[j:j + len(b)] for j in range(len(a) - len(b) + 1)]
        diffs = [[(u, w) for u, w in zip(win, b) if u != w] for win in windows]
        y = int(ds.y[i])
        if y == 0:            # B is a clause of A, word for word; the evidence is its sentiment word
            assert b in windows and set(b) <= set(a)
            assert len(ea) == len(eb) == 1 and ea == eb and eb[0] in _POS | _NEG
        elif y == 2:          # B is a clause of A with its sentiment word flipped
            assert b not in windows and any(len(d) == 1 and (d[0][0] in _POS) != (d[0][1] in _POS)
                                            and {d[0][0], d[0][1]} <= _POS | _NEG for d in diffs), (a, b)
            assert len(ea) == len(eb) == 1 and (ea[0] in _POS) != (eb[0] in _POS)
        else:                 # B is about nouns A never mentions (synonyms included)
            assert not {_SENSE[w] for w in b if w in _SENSE} & {_SENSE[w] for w in a if w in _SENSE}
            assert not ea and eb == [w for w in b if w in _SENSE] and any(w in _POS | _NEG for w in b)
    counts = torch.bincount(ds.y, minlength=3).float() / len(ds)
    assert (counts - 1 / 3).abs().max() < 0.06

def test_pairs_info_and_determinism():
    i = dataset_info('sentence_pairs', task='entailment', max_len=30)
    assert i['classes'] == ['entailment', 'neutral', 'contradiction'] and i['num_classes'] == 3
    assert i['shapes'] == {'tokens': (2, 30), 'y': (), 'mask': (2, 30)} and 'MRPC' in i['stands_in_for']
    assert dataset_info('sentence_pairs')['classes'] == ['not_paraphrase', 'paraphrase']
    b = dataset_info('brain_mri', image_size=16)
    assert b['shapes'] == {'x': (1, 16, 16), 'y': (), 'mask': (1, 16, 16)} and b['classes'] == list(BRAIN_MRI_CLASSES)
    assert b['split_sizes'] == dict(search_train=480, search_val=480, train=960, test=240) and 'Kaggle' in b['stands_in_for']
    kw = dict(n=200, n_test=40)
    p, e = (get_dataset('sentence_pairs', 'test', seed=1, task=t, **kw) for t in PAIR_TASKS)
    assert p.sentences != e.sentences                                   # the task is part of the seed
    longer = get_dataset('sentence_pairs', 'test', seed=1, task='paraphrase', max_len=40, **kw)
    assert longer.sentences == p.sentences and torch.equal(longer.tokens[..., :24], p.tokens) and not longer.tokens[..., 24:].any()

# ---------------------------------------------------------------- skin lesions (ISIC-2018 stand-in)

import torch.nn.functional as F
from trustnas_nb.datasets import SkinLesions, ISIC_TRAIN_COUNTS, SKIN_LESION_CLASSES, SEXES

SMALL['skin_lesions'] = dict(n=400, n_test=100)          # the generic tests above parametrize over DATASETS
_clear_caches_before_skin = _clear_caches
def _clear_caches():                                     # also regenerate the skin-lesion pool in test_determinism_from_seed
    _clear_caches_before_skin(); D._skin_lesions_pool.cache_clear()

def test_skin_lesions_classes_shapes_and_info():
    from trustnas_nb.loaders import ISIC_CLASSES
    assert SKIN_LESION_CLASSES == ISIC_CLASSES == SkinLesions.classes and SkinLesions.attributes == SEXES == ('female', 'male')
    i = dataset_info('skin_lesions', image_size=32)
    assert i['shapes'] == dict(x=(3, 32, 32), y=(), a=()) and i['fields'] == ('x', 'y', 'a') and i['num_classes'] == 7
    assert i['attributes'] == ['female', 'male'] and 'ISIC-2018' in i['stands_in_for'] and 'sex' in i['stands_in_for']
    for S in (16, 32):
        ds = get_dataset('skin_lesions', 'search_val', seed=1, image_size=S, **SMALL['skin_lesions'])
        assert ds.x.shape == (len(ds), 3, S, S) and ds.x.dtype == torch.float32 and 0 <= ds.x.min() and ds.x.max() <= 1
        assert ds.y.dtype == ds.a.dtype == torch.long and set(ds.a.tolist()) <= {0, 1}
        x, y, a = ds[0]
        assert x.shape == (3, S, S) and y.shape == a.shape == ()

def test_skin_lesions_determinism():
    a = SkinLesions('test', seed=4, **SMALL['skin_lesions'])
    D._skin_lesions_pool.cache_clear()
    b = SkinLesions('test', seed=4, **SMALL['skin_lesions'])
    c = SkinLesions('test', seed=5, **SMALL['skin_lesions'])
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in a.fields)
    assert not torch.equal(a.x, c.x)
    a.x.zero_()                                                   # items are copies of the cached pool
    assert SkinLesions('test', seed=4, **SMALL['skin_lesions']).x.max() > 0

def test_skin_lesions_follow_isic_proportions():
    share = np.array(list(ISIC_TRAIN_COUNTS.values()), float); share /= share.sum()
    assert ISIC_TRAIN_COUNTS == {'MEL': 1113, 'NV': 6705, 'BCC': 514, 'AKIEC': 327, 'BKL': 1099, 'DF': 115, 'VASC': 142}
    for split in SPLITS:
        ds = SkinLesions(split, seed=0)
        counts = np.bincount(ds.y.numpy(), minlength=7)
        assert (counts > 0).all() and np.abs(counts - share * len(ds)).max() <= 1.5, (split, counts)   # apportioned
    assert int(np.argmax(counts)) == SKIN_LESION_CLASSES.index('NV')

def test_skin_lesions_attribute_correlation_train_not_test():
    tr, te = SkinLesions('train', seed=0, bias=0.85), SkinLesions('test', seed=0, bias=0.85)
    ib = tr.in_biased
    assert abs(float(tr.a[ib].float().mean()) - 0.85) < 0.02 and abs(float(tr.a[~ib].float().mean()) - 0.15) < 0.02
    assert abs(float(te.a[te.in_biased].float().mean()) - 0.5) < 0.05 and abs(float(te.a[~te.in_biased].float().mean()) - 0.5) < 0.05
    c_tr, c_te = attribute_label_correlation(tr.a, tr.in_biased), attribute_label_correlation(te.a, te.in_biased)
    assert c_tr > 0.6 and abs(c_te) < 0.1
    # a reduced (not removed) test correlation, the chosen subset, and no bias at all
    te2 = SkinLesions('test', seed=0, bias=0.85, test_bias=0.65)
    assert 0.1 < attribute_label_correlation(te2.a, te2.in_biased) < c_tr
    nv = SkinLesions('train', seed=0, biased_classes=['NV'])
    assert nv.params['biased_classes'] == ('NV',) and abs(float(nv.a[nv.y == 1].float().mean()) - 0.8) < 0.01
    assert abs(attribute_label_correlation(*(lambda d: (d.a, d.in_biased))(SkinLesions('train', seed=0, bias=0.5)))) < 0.03

def test_skin_lesions_attribute_shifts_the_image():
    te = SkinLesions('test', seed=0)
    bg = te.x[:, :, :3, :3].mean((2, 3))                          # a corner: skin (and hair), no lesion
    d = bg[te.a == 0].mean(0) - bg[te.a == 1].mean(0)
    assert d.mean() > 0.03                                        # a = 1: darker skin / more hair
    assert d.abs().max() < 0.2                                    # ... but only slightly

def test_skin_lesions_classes_are_separable_by_colour():
    def hist(x, b=4):                                             # colour histogram of the centre (the lesion)
        c = x.shape[-1] // 4; q = (x[..., c:-c, c:-c].clamp(0, 0.999) * b).long()
        return F.one_hot(((q[:, 0] * b + q[:, 1]) * b + q[:, 2]).flatten(1), b ** 3).float().mean(1)
    tr, te = SkinLesions('train', seed=0), SkinLesions('test', seed=0)
    htr, hte = hist(tr.x), hist(te.x)
    mu = torch.stack([htr[tr.y == k].mean(0) for k in range(7)])
    pred = torch.cdist(hte, mu).argmin(1)
    balanced = np.mean([float((pred[te.y == k] == k).float().mean()) for k in range(7)])
    assert balanced > 0.35                                        # chance: 1/7

@pytest.mark.parametrize('kw, needle', [
    (dict(bias=1.2), 'bias = 1.2'), (dict(test_bias=-0.1), 'test_bias = -0.1'), (dict(image_size=4), 'image_size = 4'),
    (dict(n=10), 'n = 10'), (dict(n=100, n_test=99), 'n_test = 99'), (dict(noise=0.9), 'noise = 0.9'),
    (dict(biased_classes=('MEL', 'XYZ')), "'XYZ'"), (dict(biased_classes=()), 'biased_classes = ()'),
    (dict(biased_classes=SKIN_LESION_CLASSES), 'not all 7'), (dict(biased_classes=('MEL', 'MEL')), 'distinct'),
    (dict(biased_classes=3), 'biased_classes = 3'), (dict(sex='male'), "['sex']"), (dict(image_size=16.0), 'image_size = 16.0'),
])
def test_skin_lesions_bad_params_raise(kw, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        get_dataset('skin_lesions', 'train', **kw)
