"Chapter 3: the IUC chain (eqs. 3.1-3.10), its data roles and rows (trustnas_nb.iuc)."
import pytest, torch
from trustnas_nb.iuc import (tiny_iuc, IUCChain, caption_data, iuc_search, cached_iuc_search, ch3_run, random_recurrent_genotype,
                             IUCSearchResult, _cfg)
from trustnas_nb.mlo import hypergradient
from trustnas_nb.captioning import build_captioner, parse_recurrent_genotype

torch.set_num_threads(1)


@pytest.mark.parametrize('variant,gamma', [('E', 0.0), ('D', 0.0), ('ED', 0.0), ('E', 0.7)])
def test_iuc_hypergradient_matches_exact_differentiation(variant, gamma):
    "Eq. 3.9 by finite differences (the engine's DARTS-style VJPs) equals autograd through the unrolls of eqs. 3.5-3.7 (float64)."
    chain, b = tiny_iuc(variant, gamma=gamma)
    fd = hypergradient(chain.levels, 'A', b, method='finite_difference', fd_eps=1e-5)
    ex = hypergradient(chain.levels, 'A', b, method='exact')
    assert set(fd) == set(ex) == set(chain.A)
    for k in ex:
        assert float(ex[k].abs().max()) > 0
        assert float((fd[k] - ex[k]).abs().max()) <= 1e-4 * float(ex[k].abs().max()), k
    # the predictive model's feedback is what moves A: without the unrolls (first order) and γ = 0, A gets nothing
    if gamma == 0:
        fo = hypergradient(chain.levels, 'A', b, method='first_order')
        assert all(float(v.abs().max()) == 0 for v in fo.values())


def test_iuc_step_updates_every_level_and_the_variants_guard_their_models():
    chain, b = tiny_iuc('ED', dtype=torch.float32)
    before = {n: p.detach().clone() for lv in chain.levels for n, p in lv.named.items()}
    info = chain.step(b['EF'], b['W'], b['A'])
    assert info['updated'] == ['EF', 'W', 'A']                        # Algorithm 3's order
    for lv in chain.levels: assert any(not torch.equal(p, before[n]) for n, p in lv.named.items()), lv.name
    ef = build_captioner('search', 'lstm', vocab_size=9, C=2, layers=3, n_nodes=2, embed_dim=4, hidden=4)
    w = build_captioner('cnn', 'lstm', vocab_size=9, cnn_width=2, embed_dim=4, hidden=4)
    with pytest.raises(ValueError, match="variant 'D' searches the decoder"): IUCChain(ef, w, 'D')
    with pytest.raises(ValueError, match='both 0'): IUCChain(ef, w, 'E', lam=0, gamma=0)
    with pytest.raises(ValueError, match="unknown IUC variant 'X'"): IUCChain(ef, w, 'X')
    with pytest.raises(ValueError, match='fixed architecture'): IUCChain(ef, ef, 'E')


def test_caption_data_roles_are_disjoint_and_deterministic():
    d = caption_data(seed=1, n_labeled=30, n_unlabeled=20, n_val=10, n_test=10, image_size=12, max_objects=2)
    d2 = caption_data(seed=1, n_labeled=30, n_unlabeled=20, n_val=10, n_test=10, image_size=12, max_objects=2)
    assert torch.equal(d['labeled'].x, d2['labeled'].x) and d['unlabeled'].tokens is None and d['unlabeled'].captions is None
    parts = [set(d[k].index.tolist()) for k in ('labeled', 'unlabeled', 'val', 'test')]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 70
    assert all(len(cs) == 5 for cs in d['labeled'].captions) and d['labeled'].tokens.shape[1] == 5
    with pytest.raises(ValueError, match='n_val must be an int >= 1'): caption_data(n_val=0)
    with pytest.raises(ValueError, match="unknown captioning dataset 'flickr'"): caption_data('flickr')


def test_search_rows_and_cache_at_ci(tmp_path):
    data = caption_data(seed=0, **_cfg('ci', 'data'))
    r = cached_iuc_search(tmp_path, 'D', scale='ci', data=data, progress=False)
    assert r.encoder is None and parse_recurrent_genotype(r.decoder) and len(r.history) == 1 and r.samples
    assert IUCSearchResult.from_json(r.to_json()) == r
    assert cached_iuc_search(tmp_path, 'D', scale='ci', data=data).seconds == r.seconds      # memoized
    rows, ex = ch3_run('iuc_d', 0, 'ci', data=data, cache_dir=tmp_path, scst=True)
    assert [x['training'] for x in rows] == ['xe', 'cider'] and rows[0]['method'] == 'IUC-D'
    for row in rows:
        assert {'bleu1', 'bleu4', 'meteor', 'rouge', 'cider'} <= set(row) and 'spice' not in row and row['spice_unavailable']
        assert 0 <= row['bleu1'] <= 100
    assert rows[0]['decoder'] == r.decoder and len(ex['texts_xe']) == len(data['test'])
    rr, _ = ch3_run('RR', 0, 'ci', data=data)
    assert rr[0]['method'] == 'R/R' and rr[0]['search_seconds'] == 0
    with pytest.raises(ValueError, match="unknown ch3 kind 'xyz'"): ch3_run('xyz', data=data)
    with pytest.raises(ValueError, match='unknown ch3 eval setting'): ch3_run('lstm', data=data, epochz=3)


def test_shared_warmup_changes_nothing_but_the_time(tmp_path):
    "A search whose warm-up is loaded from the cache equals one that ran it, and the (λ, γ) searches share one warm-up."
    data = caption_data(seed=0, **_cfg('ci', 'data'))
    kw = dict(scale='ci', data=data, progress=False, warmup_epochs=1, max_steps=1)
    plain = iuc_search('E', **kw)
    first = iuc_search('E', cache_dir=tmp_path, **kw)
    loaded = iuc_search('E', cache_dir=tmp_path, **kw)
    for r in (first, loaded):
        assert r.encoder == plain.encoder and r.samples == plain.samples
        assert [h['loss_A'] for h in r.history] == pytest.approx([h['loss_A'] for h in plain.history], rel=1e-6)
    import json
    warm = sum(json.loads(f.read_text())['seconds'] for f in (tmp_path/'iuc_warmup').glob('*.json'))
    assert loaded.seconds >= warm > 0                                  # a loaded warm-up still counts the seconds it took
    iuc_search('E', lam=0.0, gamma=1.0, cache_dir=tmp_path, **kw)
    iuc_search('D', cache_dir=tmp_path, **kw)
    files = sorted(f.name.split('-')[0] for f in (tmp_path/'iuc_warmup').glob('*.pt'))
    assert files == ['ef', 'ef', 'w']                                     # E and D's encoder-decoders, one predictive model
    few = iuc_search('E', **dict(kw, n_labeled=8, max_steps=None, epochs=1))   # ci batch 16: one step on 8 images
    assert len(few.history) == 1
    with pytest.raises(ValueError, match='search n_labeled must be None .* got 0'): iuc_search('E', **dict(kw, n_labeled=0))


def test_rows_of_the_same_run_are_reused(tmp_path):
    "R/R is the random row's network and training: with reuse_rows it comes from the cache, relabelled, equal to a fresh run."
    data = caption_data(seed=0, **_cfg('ci', 'data'))
    rnd, _ = ch3_run('random', 0, 'ci', data=data, cache_dir=tmp_path)
    fresh, ex = ch3_run('RR', 0, 'ci', data=data)
    reused, ex2 = ch3_run('RR', 0, 'ci', data=data, cache_dir=tmp_path, reuse_rows=True)
    assert 'model_xe' in ex and ex2.get('cached') and 'model_xe' not in ex2
    assert reused[0]['method'] == fresh[0]['method'] == 'R/R' and reused[0]['kind'] == 'RR'
    assert reused[0]['cider'] == pytest.approx(fresh[0]['cider']) == pytest.approx(rnd[0]['cider'])
    # a run with an SCST row the cache does not have trains again (and then adds it)
    again, ex3 = ch3_run('RR', 0, 'ci', data=data, cache_dir=tmp_path, reuse_rows=True, scst=True)
    assert [r['training'] for r in again] == ['xe', 'cider'] and 'model_cider' in ex3


def test_random_recurrent_genotypes_are_valid_and_seeded():
    a, b = random_recurrent_genotype(5, 3), random_recurrent_genotype(5, 3)
    assert a == b and len(a.recurrent) == 5 and all(j <= i for i, (_, j) in enumerate(a.recurrent))
    assert len({repr(random_recurrent_genotype(5, s)) for s in range(6)}) > 1


def test_iuc_benchmark_suite_runs_quick(bench_quick):
    "benchmarks/bench_iteration.py --suite iuc at tiny sizes: both modes run, the table names the 2x target and a decoding rate."
    md = bench_quick('iuc')
    assert '| iuc_e |' in md and '≤ 2.0× time' in md and 'captions/s' in md and 'not run' not in md


def test_caption_data_reads_coco_with_the_karpathy_split(tmp_path):
    "paper scale: COCO images + dataset_coco.json in the real layout; the unlabeled role withholds the training captions."
    from trustnas_nb import loaders
    loaders._write_coco_captions(tmp_path, n=3)
    d = caption_data('coco_captions', seed=0, n_labeled=4, n_unlabeled=2, n_val=3, n_test=3, image_size=16, root=tmp_path)
    assert [len(d[k]) for k in ('labeled', 'unlabeled', 'val', 'test')] == [4, 2, 3, 3]
    assert d['labeled'].x.shape[1:] == (3, 16, 16) and d['labeled'].tokens.shape[:2] == (4, 5) and d['unlabeled'].tokens is None
    v = d['vocab']
    assert all(v.decode(d['test'].tokens[i, 0]) == ' '.join(v.tokenize(d['test'].captions[i][0])) for i in range(3))
    with pytest.raises(ValueError, match='exceeds the 6 Karpathy training images'):
        caption_data('coco_captions', n_labeled=5, n_unlabeled=2, root=tmp_path)
