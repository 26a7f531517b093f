"Text NAS (thesis §4.4.2): Gumbel-softmax relaxation, the 1-D search space, the text supernet, salient words."
import math
import pytest
import torch
import torch.nn.functional as F
from trustnas_nb.ops import make_op, TEXT_PRIMITIVES, get_space
from trustnas_nb.textnas import (one_hot_tokens, gumbel_relax, gumbel_temperature, build_text_supernet, text_network,
                                 genotype_space, text_tensors, text_evidence_masks, word_saliency, top_words, word_precision,
                                 is_text_dataset, text_run)
from trustnas_nb.saliency import attribute

V = 30


def test_gumbel_hard_samples_are_one_hot_and_pads_stay_zero():
    t = torch.tensor([[3, 7, 9, 0, 0], [1, 2, 0, 0, 0]])
    y = gumbel_relax(t, V, tau=0.5, hard=True, generator=torch.Generator().manual_seed(0))
    assert y.shape == (2, V, 1, 5)
    col = y.sum(1)[:, 0]                                   # (2, 5): 1 on words, 0 on pads
    assert torch.equal(col, (t != 0).float())
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_gumbel_soft_samples_lie_on_the_simplex_and_carry_gradients():
    t = torch.tensor([[3, 7, 9, 4]])
    y = gumbel_relax(t, V, tau=1.0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(y.sum(1), torch.ones(1, 1, 4), atol=1e-6) and bool((y > 0).all())
    # soft mode: gradients flow from a loss on the relaxed input into a model's parameters and into the sample
    w = torch.randn(V, requires_grad=True)
    y = y.requires_grad_(True)
    (y * w[None, :, None, None]).sum().backward()
    assert w.grad is not None and float(w.grad.abs().sum()) > 0 and y.grad is not None
    # hard mode uses the straight-through estimator: the gradient of the soft sample
    logits_t = torch.tensor([[3, 7]])
    yh = gumbel_relax(logits_t, V, tau=0.5, hard=True, generator=torch.Generator().manual_seed(2))
    assert yh.requires_grad is False            # the relaxation of fixed tokens has no parameters of its own


def test_gumbel_low_temperature_keeps_the_word_with_probability_about_one_minus_smoothing():
    t = torch.full((1, 4000), 5)
    y = gumbel_relax(t, V, tau=0.05, smoothing=0.2, generator=torch.Generator().manual_seed(3))
    kept = float((y.argmax(1) == 5).float().mean())
    assert abs(kept - (0.8 + 0.2 / V)) < 0.03
    with pytest.raises(ValueError, match='smoothing'): gumbel_relax(t, V, tau=1.0, smoothing=0.0)
    with pytest.raises(ValueError, match='tau'): gumbel_relax(t, V, tau=0)
    with pytest.raises(ValueError, match=r'token ids must lie in \[0, 29\]'): gumbel_relax(torch.tensor([[31]]), V, tau=1.0)


def test_temperature_anneals_exponentially_as_configured():
    taus = [gumbel_temperature(e, 5, 1.0, 0.1) for e in range(5)]
    assert taus[0] == 1.0 and math.isclose(taus[-1], 0.1)
    ratios = [b / a for a, b in zip(taus, taus[1:])]
    assert all(math.isclose(r, 0.1 ** 0.25) for r in ratios)
    with pytest.raises(ValueError): gumbel_temperature(0, 3, 0.0, 0.1)


def test_text_operations_keep_shapes_and_refuse_stride_two():
    x = torch.randn(2, 6, 1, 11)
    for name in TEXT_PRIMITIVES:
        assert make_op(name, 6, 1, search=True)(x).shape == x.shape
    with pytest.raises(ValueError, match='stride must be 1'): make_op('dil_conv1d_7', 6, 2)
    assert len(get_space('text').primitives) == 10


def test_text_supernet_single_and_pair_shapes_and_id_onehot_equivalence():
    torch.manual_seed(0)
    net = build_text_supernet(V, 3, C=4, layers=2, n_nodes=2, embed_dim=8).eval()
    t = torch.randint(1, V, (5, 12)); t[:, 9:] = 0
    with torch.no_grad():
        a, b = net(t), net(one_hot_tokens(t, V))
    assert a.shape == (5, 3) and torch.allclose(a, b, atol=1e-5)
    pnet = build_text_supernet(V, 2, C=4, layers=2, n_nodes=2, embed_dim=8, pair=True).eval()
    tp = torch.randint(1, V, (4, 2, 12))
    with torch.no_grad():
        assert pnet(tp).shape == (4, 2) and torch.allclose(pnet(tp), pnet(one_hot_tokens(tp, V)), atol=1e-5)
        # the two sentences of a pair play different roles in the matching features [u, v, u - v]
        assert not torch.allclose(pnet(tp), pnet(tp.flip(1)))
    with pytest.raises(ValueError, match='sentence pairs'): pnet(t)
    with pytest.raises(ValueError, match='single sentences'): net(tp)
    assert net.genotype().reduce == []


def test_padded_tokens_are_never_salient():
    torch.manual_seed(1)
    net = build_text_supernet(V, 2, C=4, layers=1, n_nodes=2, embed_dim=8).eval()
    t = torch.randint(1, V, (4, 10)); t[:, 6:] = 0
    a = attribute(net, one_hot_tokens(t, V), torch.tensor([0, 1, 0, 1]), method='ig')
    assert float(a.abs().sum(1)[:, 0][t == 0].max()) == 0.0        # zero columns: zero attribution, before any masking
    for m in ('ig', 'aa'):
        s = word_saliency(net, t, method=m)
        assert s.shape == (4, 1, 10) and float(s[:, 0][t == 0].abs().max()) == 0.0
    top = top_words(word_saliency(net, t), t, k=2)
    assert bool((top < 6).all())


def test_word_precision_matches_a_hand_computation():
    t = torch.tensor([[4, 5, 6, 7, 0], [4, 5, 6, 0, 0]])
    s = torch.tensor([[[0.9, 0.1, 0.8, 0.2, 5.0]], [[0.1, 0.3, 0.2, 9.0, 9.0]]])   # pads carry junk, must be ignored
    ev = torch.tensor([[[1, 0, 0, 1, 0]], [[0, 1, 0, 0, 0]]])
    # sentence 0: top-2 = positions 0, 2 -> 1 hit of min(2, 2) = 0.5; sentence 1: top-2 = 1, 2 -> 1 hit of min(2, 1) = 1
    assert top_words(s, t, 2).tolist() == [[0, 2], [1, 2]]
    assert math.isclose(word_precision(s, ev, t, 2), 0.75)


def test_genotype_space_and_text_network_are_the_discrete_cell():
    torch.manual_seed(2)
    net = build_text_supernet(V, 2, C=4, layers=2, n_nodes=3, embed_dim=8)
    g = net.genotype()
    sp = genotype_space(g)
    kept = [ops[0] for ops in sp.normal_ops if ops[0] != 'none']
    assert sorted(kept) == sorted(op for op, _ in g.normal) and len(kept) == 6
    tn = text_network(g, V, 2, C=4, layers=2, embed_dim=8)
    assert not any(p.requires_grad for p in tn.arch_parameters())
    assert tn(torch.randint(1, V, (3, 9))).shape == (3, 2)
    with pytest.raises(ValueError, match='not in the text space'):
        from trustnas_nb.genotypes import Genotype
        genotype_space(Genotype([('sep_conv_3x3', 0), ('skip_connect', 1)], [2], [], []))


def test_text_data_for_the_driver():
    x, y, nc, v = text_tensors('sentiment', 'search_train', 0, 7, max_len=24)
    assert x.shape == (7, 24) and x.dtype == torch.long and nc == 2
    assert v > int(x.max())
    m = text_evidence_masks('sentiment', 'search_train', 0, 7, max_len=24)
    assert m.shape == (7, 1, 1, 24) and bool((m[:, 0, 0].bool() <= (x != 0)).all())   # evidence only on words
    assert is_text_dataset('mrpc') and not is_text_dataset('cifar10')
    with pytest.raises(ValueError, match='unknown text dataset'): text_tensors('cifar10', 'train', 0, 3)
    with pytest.raises(ValueError, match='max_len'): text_tensors('sentiment', 'train', 0, 3, max_len=1)


@pytest.mark.parametrize('method,dataset', [('darts_2nd', 'sentiment'), ('sanas_darts2nd', 'sentiment'), ('cdep_darts2nd', 'sentiment'),
                                            ('gmpgc_darts2nd', 'sentiment'), ('sanas_darts2nd', 'paraphrase_pairs'),
                                            ('cdep_darts2nd', 'entailment_pairs'), ('gmpgc_darts2nd', 'paraphrase_pairs'),
                                            ('ec_darts2nd', 'paraphrase_pairs')])
def test_the_driver_searches_the_text_space(method, dataset):
    "Every chapter-4 row searches single sentences and pairs (CDEP's decomposition and GMPGC's composites included)."
    from trustnas_nb.search import run_search
    r = run_search(method, 'text', scale='ci', seed=0, progress=False, dataset=dataset, image_size=24, n_train=32,
                   n_val=32, batch_size=16, C=4, layers=1, nodes=2, max_steps=1)
    assert all(op in TEXT_PRIMITIVES for op, _ in r.genotype.normal)
    with pytest.raises(ValueError, match="search the 'text' space"):
        run_search(method, 'darts', scale='ci', seed=0, progress=False, dataset=dataset, image_size=24)


def test_sanas_text_chain_relaxes_training_batches(monkeypatch):
    "The SANAS chain sees Gumbel-softmax columns (soft, on the simplex) for training and exact one-hot columns for validation."
    import trustnas_nb.sanas as S
    seen = []
    orig = S.SanasChain.step
    def spy(self, train, val=None, warm=False):
        seen.append((train[0].detach().clone(), val[0].detach().clone()))
        return orig(self, train, val, warm)
    monkeypatch.setattr(S.SanasChain, 'step', spy)
    from trustnas_nb.search import run_search
    run_search('sanas_darts2nd', 'text', scale='ci', seed=0, progress=False, dataset='sentiment', image_size=24, n_train=32,
               n_val=32, batch_size=16, C=4, layers=1, nodes=2, max_steps=1)
    xt, xv = seen[0]
    assert xt.dim() == 4 and xt.shape[2] == 1
    words = xt.sum(1)[:, 0] > 0
    assert torch.allclose(xt.sum(1)[:, 0][words], torch.ones(int(words.sum())), atol=1e-5)
    assert float(((xt > 0) & (xt < 1)).float().mean()) > 0.01            # soft
    assert set(xv.unique().tolist()) <= {0.0, 1.0}                       # exact


def test_text_run_row(tmp_path):
    row, net = text_run('plain', 0, 'ci', 'sentiment', cache_dir=tmp_path, n_words=8)
    assert row['method'] == 'AdaBERT' and 0 <= row['acc'] <= 100 and 0 <= row['word_precision'] <= 100
    row2, _ = text_run('plain', 0, 'ci', 'sentiment', cache_dir=tmp_path, n_words=8)    # cached: the same numbers
    assert row2['acc'] == row['acc'] and row2['genotype'] == row['genotype']
    with pytest.raises(ValueError, match='unknown Table 4.6 row kind'): text_run('bert', 0, 'ci', 'sentiment')
    with pytest.raises(ValueError, match='not a text dataset'): text_run('plain', 0, 'ci', 'objects10')


@pytest.mark.parametrize('task', ['sst2', 'mrpc', 'mnli'])
def test_glue_tasks_reach_the_driver_from_their_tsv_files(task, tmp_path, monkeypatch):
    "A GLUE task written in its real TSV layout is tokenized with a training-split vocabulary and searched."
    from trustnas_nb.loaders import write_fixture, get_real_dataset
    import trustnas_nb.textnas as T
    write_fixture(task, tmp_path, n=4)
    monkeypatch.setenv('TRUSTNAS_DATA_ROOT', str(tmp_path))
    monkeypatch.setattr(T, '_GLUE_CACHE', {})
    x, y, nc, v = text_tensors(task, 'train', 0, None, max_len=12)
    tr = get_real_dataset(task, split='train')
    assert len(x) == len(tr) and nc == len(tr.classes)
    assert x.shape[1:] == ((12,) if task == 'sst2' else (2, 12)) and int(x.max()) < v
    # 'train' is the whole training split in a seeded order: the same (ids, label) rows as encoding the file directly
    from trustnas_nb.datasets import Vocab
    vocab = T.text_vocab(task, 0, 12)
    enc = lambda s: vocab.encode(Vocab.tokenize(s)[:12], bos=False, eos=False, max_len=12)
    want = sorted((str([enc(s)] if isinstance(s, str) else [enc(a) for a in s]), int(t)) for s, t in zip(tr.sentences, tr.targets))
    got = sorted((str([r.tolist()] if r.dim() == 1 else r.tolist()), int(t)) for r, t in zip(x, y))
    assert got == want
    assert vocab.itos[:4] == ['<pad>', '<bos>', '<eos>', '<unk>']
    xs, ys, _, _ = text_tensors(task, 'test', 0, None, max_len=12)       # GLUE's dev set: labelled
    assert len(xs) == len(get_real_dataset(task, split='val')) and bool((ys >= 0).all())
    from trustnas_nb.search import run_search
    r = run_search('darts_2nd', 'text', scale='ci', seed=0, progress=False, dataset=task, image_size=12, n_train=4, n_val=4,
                   batch_size=2, C=4, layers=1, nodes=2, max_steps=1)
    assert all(op in TEXT_PRIMITIVES for op, _ in r.genotype.normal)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_gumbel_relax_on_a_gpu_batch():
    t = torch.tensor([[3, 7, 0]], device='cuda')
    y = gumbel_relax(t, V, tau=0.5, generator=torch.Generator().manual_seed(0))
    assert y.device.type == 'cuda' and torch.allclose(y.sum(1)[0, 0], torch.tensor([1., 1., 0.], device='cuda'), atol=1e-5)


def test_alpha_updates_counts_the_architecture_steps():
    "SANAS updates A every 5 mini-batches, a plain search on every non-warm-up one: the rows report how often."
    from trustnas_nb.search import run_search
    from trustnas_nb.sanas import alpha_updates
    kw = dict(scale='ci', seed=0, progress=False, dataset='sentiment', image_size=24, n_train=96, n_val=96, batch_size=16, C=4,
              layers=1, nodes=2, max_steps=None)
    assert alpha_updates(run_search('darts_2nd', 'text', **kw)) == 6
    assert alpha_updates(run_search('sanas_darts2nd', 'text', **kw)) == 2          # steps 0 and 5 of 6
