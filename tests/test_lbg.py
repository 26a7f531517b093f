"LBG / DALBG (thesis ch.2): the three-level chain's hypergradient, K = 1, group routing, C's rows."
import pytest
import torch
from torch import nn
import torch.nn.functional as F
from trustnas_nb.lbg import LBGChain, tiny_lbg, manual_c_gradient, manual_top_gradient, group_probs


@pytest.mark.parametrize('lam', [0.0, 0.1])
def test_c_hypergradient_matches_eqs_2_11_to_2_14_by_hand(lam):
    "The engine's exact hypergradient of C equals autograd through T' (eq. 2.11) and S' (eq. 2.12); finite differences agree."
    chain, tr, va = tiny_lbg(seed=1, lam=lam)
    batches = {'T': tr, 'S': tr, 'C': va}
    man = manual_c_gradient(chain, tr, va)
    eng = chain.problem.hypergradient('C', batches)['C']
    assert float(man.abs().max()) > 1e-6                   # a real signal, not zeros compared with zeros
    assert torch.allclose(eng, man, atol=1e-10, rtol=1e-8)
    chain.problem.method = 'finite_difference'
    fd = chain.problem.hypergradient('C', batches)['C']
    assert torch.allclose(fd, man, atol=1e-6, rtol=1e-3), float((fd - man).abs().max())


def test_k_equal_one_is_plain_training():
    "With one expert the GAM's loss is 0, E = G = 1, and the expert trains exactly as plain SGD on the same batches."
    torch.manual_seed(0)
    d, classes = 5, 3
    mk = lambda out: nn.Sequential(nn.Linear(d, 6), nn.Tanh(), nn.Linear(6, out)).double()
    gam, expert = mk(1), mk(classes)
    plain = mk(classes); plain.load_state_dict(expert.state_dict())
    chain = LBGChain(gam, [expert], 8, torch.optim.SGD(gam.parameters(), lr=0.1), torch.optim.SGD(expert.parameters(), lr=0.1),
                     grad_clip=None, dtype=torch.float64)
    C0 = chain.C.detach().clone()
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(8, d, generator=g, dtype=torch.float64); y = torch.randint(0, classes, (8,), generator=g)
        xv = torch.randn(8, d, generator=g, dtype=torch.float64); yv = torch.randint(0, classes, (8,), generator=g)
        chain.step((x, y, torch.arange(8)), (xv, yv))
        opt.zero_grad(); nn.functional.cross_entropy(plain(x), y).backward(); opt.step()
    for a, b in zip(expert.parameters(), plain.parameters()): assert torch.allclose(a, b, atol=1e-12)
    assert torch.equal(chain.C.detach(), C0)                # no gradient reaches C with one group


def test_each_expert_sees_only_its_group():
    chain, (x, y, idx), va = tiny_lbg(seed=2, K=3, n=12)
    seen = {k: [] for k in range(3)}
    hooks = [e.register_forward_hook(lambda m, inp, out, k=k: seen[k].append(inp[0].detach())) for k, e in enumerate(chain.experts)]
    try: chain.loss_S(dict(chain.experts.named_parameters()), dict(chain.gam.named_parameters()), x, y)
    finally:
        for h in hooks: h.remove()
    _, jh, _ = chain.assign(dict(chain.gam.named_parameters()), x)
    for k in range(3):
        got = torch.cat(seen[k]) if seen[k] else x[:0]
        assert torch.equal(got, x[jh == k])
    assert sum(len(torch.cat(v)) for v in seen.values() if v) == len(x)     # O(N): every example once


def test_c_rows_stay_distributions_and_move():
    chain, tr, va = tiny_lbg(seed=3, hypergradient='finite_difference')
    C0 = chain.C.detach().clone()
    for _ in range(4): chain.step(tr, va)
    q = group_probs(chain.C.detach())
    assert torch.allclose(q.sum(1), torch.ones(len(q), dtype=q.dtype)) and bool((q >= 0).all())
    assert not torch.equal(chain.C.detach(), C0)
    assert chain.predict(va[0]).shape == va[1].shape


def test_bad_settings_are_named():
    gam = nn.Linear(3, 2); experts = [nn.Linear(3, 2), nn.Linear(3, 2)]
    opt = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match='lam must be'): LBGChain(gam, experts, 4, opt(gam), opt(nn.ModuleList(experts)), lam=-1)
    with pytest.raises(ValueError, match="unknown distance 'wasserstein'"):
        LBGChain(gam, experts, 4, opt(gam), opt(nn.ModuleList(experts)), distance='wasserstein')
    with pytest.raises(ValueError, match='n_train must be'): LBGChain(gam, experts, 0, opt(gam), opt(nn.ModuleList(experts)))


@pytest.mark.parametrize('lam', [0.0, 0.1])
def test_lbg_nas_hypergradient_of_c_and_architectures(lam):
    "LBG-NAS (eqs. 2.9-2.10): C and every A_k in the top level; the engine's exact hypergradient equals autograd through T' and S' (eqs. 2.14-2.19)."
    chain, tr, va = tiny_lbg(seed=4, lam=lam, nas=True)
    assert chain.nas and set(chain.levels[2].named) == {'C', *(f'A.{n}' for n in chain.A)}
    assert not set(chain.levels[1].named) & set(chain.A)                    # architectures are not weights
    batches = {'T': tr, 'S': tr, 'C': va}
    man = manual_top_gradient(chain, tr, va)
    eng = chain.problem.hypergradient('C', batches)
    for k in man:
        assert float(man[k].abs().max()) > 1e-8, k
        assert torch.allclose(eng[k], man[k], atol=1e-10, rtol=1e-8), k
    # Algorithm 2's finite differences converge to it; the supernet's ReLUs and max-pools make the default ε = 0.01
    # cross kinks on this tiny net, so the check uses a small ε (float64)
    chain.problem.method, chain.problem.fd_eps = 'finite_difference', 1e-5
    fd = chain.problem.hypergradient('C', batches)
    for k in man:
        rel = float((fd[k] - man[k]).norm() / man[k].norm())
        cos = float(F.cosine_similarity(fd[k].flatten(), man[k].flatten(), dim=0))
        assert rel < 0.01 and cos > 0.9999, (k, rel, cos)


def test_lbg_nas_step_moves_architectures_and_genotypes_derive():
    chain, tr, va = tiny_lbg(seed=5, nas=True, hypergradient='finite_difference')
    A0 = {k: v.detach().clone() for k, v in chain.A.items()}
    chain.step(tr, va)
    assert all(not torch.equal(chain.A[k].detach(), A0[k]) for k in A0)
    gs = chain.genotypes()
    assert len(gs) == 2 and all(len(g.normal) == 4 for g in gs)             # 2 intermediate nodes, 2 inputs each
    chain2, _, _ = tiny_lbg(seed=5)
    with pytest.raises(ValueError, match='no architectures'): chain2.genotypes()


def test_mixed_experts_are_refused():
    from trustnas_nb.supernet import build_supernet
    gam = nn.Linear(3, 2); experts = [build_supernet('darts', C=2, num_classes=2, layers=3, n_nodes=2), nn.Linear(3, 2)]
    with pytest.raises(ValueError, match='every expert is a supernet'):
        LBGChain(gam, experts, 4, torch.optim.SGD(gam.parameters(), lr=0.1), torch.optim.SGD(nn.ModuleList(experts).parameters(), lr=0.1))


@pytest.mark.parametrize('distance', ['coral', 'kl', 'cdd'])
def test_dalbg_other_distances_survive_tiny_groups(distance):
    "Table 2.8's distances skip a group too small to fit (one example, or no class in common) instead of failing."
    chain, (x, y, idx), va = tiny_lbg(seed=6, lam=0.1, distance=distance, n=4)
    S, T, A = chain.current()
    q = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]], dtype=x.dtype)    # group 0 holds one example
    assert float(chain.discrepancy(S, q, x, y)) == 0.0
    q2 = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]], dtype=x.dtype)
    d = chain.discrepancy(S, q2, x, torch.tensor([0, 1, 0, 1]))
    assert torch.isfinite(d) and (distance == 'cdd' or float(d.detach()) != 0.0)


def test_resnet_cifar_depths_and_expert_width():
    from trustnas_nb.lbg import resnet_cifar, expert_width
    assert resnet_cifar(56).depth == 56 and len(resnet_cifar(56).blocks) == 27
    convs = [m for m in resnet_cifar(20, 4, 3).modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 20                      # 19 3x3 convolutions + the classifier: ResNet-20
    with pytest.raises(ValueError, match='6n \\+ 2'): resnet_cifar(51)
    n = lambda m: sum(p.numel() for p in m.parameters())
    for K in (2, 3, 4):                              # K experts at width w/sqrt(K) hold about the baseline's parameters
        assert 0.75 < K * n(resnet_cifar(20, expert_width(16, K))) / n(resnet_cifar(20, 16)) < 1.25
    assert resnet_cifar(8, 4, 7)(torch.randn(2, 3, 16, 16)).shape == (2, 7)


def test_fit_lbg_runs_both_phases_and_is_deterministic():
    from trustnas_nb.lbg import fit_lbg, lbg_predict, resnet_cifar
    g = torch.Generator().manual_seed(0)
    x = torch.rand(48, 3, 8, 8, generator=g); y = (x[:, 0].mean((1, 2)) > 0.5).long()
    def run():
        torch.manual_seed(0)
        chain, h = fit_lbg(resnet_cifar(8, 2, 2), [resnet_cifar(8, 3, 2) for _ in range(2)], (x[:24], y[:24]), (x[24:], y[24:]),
                           epochs=2, batch_size=8, finetune=(x, y), finetune_epochs=1, progress=False, seed=3)
        return chain, h, lbg_predict(chain, x)
    c1, h1, (p1, g1) = run(); c2, h2, (p2, g2) = run()
    assert list(h1.phase) == ['grouping', 'grouping', 'finetune']
    assert h1.group_0.iloc[-1] + h1.group_1.iloc[-1] == 24
    assert torch.equal(p1, p2) and torch.equal(g1, g2) and torch.equal(c1.C, c2.C)
    with pytest.raises(ValueError, match='finetune_epochs > 0 needs'):
        fit_lbg(resnet_cifar(8, 2, 2), [resnet_cifar(8, 3, 2)] * 2, (x, y), (x, y), finetune_epochs=1, progress=False)


def test_fairness_tensors_carry_the_attribute_and_refuse_unknown_names():
    from trustnas_nb.lbg import fairness_tensors
    x, y, a, nc = fairness_tensors('skin_lesions', 'test', 0, 8, 20)
    assert x.shape == (20, 3, 8, 8) and y.shape == a.shape == (20,) and nc == 7 and set(a.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="unknown fairness dataset 'mnist'"): fairness_tensors('mnist', 'test')


def test_ch2_run_rows_and_bad_input():
    from trustnas_nb.lbg import ch2_run
    row, ex = ch2_run('lbg', 'resnet', 'biased_digits', 0, 'ci', epochs=1, finetune_epochs=1, n_train=64, n_test=64)
    assert row['method'] == 'LBG-ResNet' and 0 <= row['error'] <= 100 and {'dp', 'deo', 'spd', 'eod', 'aod'} <= set(row)
    assert row['test_group_0'] + row['test_group_1'] == 64 and 0 <= row['groups_attribute_nmi'] <= 1
    plain, _ = ch2_run('plain', 'resnet', 'biased_digits', 0, 'ci', n_train=64, n_test=64)
    assert plain['K'] == 1 and plain['params_m'] > 0
    with pytest.raises(ValueError, match="unknown kind 'moe'"): ch2_run('moe')
    with pytest.raises(ValueError, match="fixed experts"): ch2_run('deepmoe', 'darts_2nd')


def test_lbg_on_token_ids_with_a_fixed_text_network():
    "Table 2.11's rows: the text CNN's frozen architecture stays out of the chain; integer token ids flow through every level."
    from trustnas_nb.lbg import ch2_run, _is_supernet, TEXT_CELL
    from trustnas_nb.textnas import text_network
    assert not _is_supernet(text_network(TEXT_CELL, 30, 2, C=4, layers=1, embed_dim=8))
    row, ex = ch2_run('lbg', 'textnet', 'sentiment', 0, 'ci', K=2, image_size=24, n_train=48, n_test=32)
    chain = ex['chain']
    assert not chain.nas and not any(n.startswith('A.') for n in chain.levels[2].named)
    assert all(p.requires_grad for p in chain.levels[1].named.values())
    assert row['method'] == 'LBG-TextNet' and {'f1', 'mcc'} <= set(row) and row['test_group_0'] + row['test_group_1'] == 32
    with pytest.raises(ValueError, match="is text: use base 'textnet'"): ch2_run('plain', 'resnet', 'sentiment')
    with pytest.raises(ValueError, match="is images"): ch2_run('plain', 'textnet', 'biased_digits')


def test_nas_rows_search_on_one_dataset_and_evaluate_on_another(tmp_path):
    "Table 2.5: the cells come from the search dataset and size (memoized), the network is built for the evaluation ones."
    from trustnas_nb.lbg import ch2_run
    kw = dict(scale='ci', cache_dir=tmp_path, search_dataset='objects10', search_image_size=8, n_train=32, n_test=32)
    r1, e1 = ch2_run('plain', 'darts_2nd', 'objects10', 0, image_size=16, eval=dict(C=4, layers=4), **kw)
    assert r1['search_image_size'] == 8 and r1['image_size'] == 16
    r2, e2 = ch2_run('plain', 'darts_2nd', 'objects10', 0, image_size=8, **{**kw, 'search_image_size': None})
    assert r2['genotypes'] == r1['genotypes']               # the same search (dataset, size) from the cache
    assert list((tmp_path/'search').glob('*.json'))


def test_lbg_benchmark_suite_runs_quick(bench_quick):
    "benchmarks/bench_iteration.py --suite lbg at tiny sizes: both modes run and the table names the 2.6x target."
    md = bench_quick('lbg')
    assert '| lbg_darts2nd |' in md and '≤ 2.6× time' in md and 'not run' not in md


@pytest.mark.parametrize('name', ['celeba', 'isic2018'])
def test_fairness_tensors_read_the_real_formats(tmp_path, name):
    "CelebA (Attractive / Male) and ISIC-2018 (the patients' sex), written in their on-disk formats, come back with the attribute."
    from trustnas_nb import loaders
    from trustnas_nb.lbg import fairness_tensors
    (loaders._write_celeba if name == 'celeba' else loaders._write_isic2018)(tmp_path)
    x, y, a, nc = fairness_tensors(name, 'test', image_size=12, root=tmp_path)
    xt, yt, at, _ = fairness_tensors(name, 'train', image_size=12, root=tmp_path)
    assert x.shape[1:] == (3, 12, 12) and len(x) == len(y) == len(a) and nc == (2 if name == 'celeba' else 7)
    assert set(a.tolist()) == {0, 1} and len(xt) > len(x)          # train = the official train + val partitions
    if name == 'celeba': assert y.tolist() == [0, 0, 1, 1, 0, 0] and a.tolist() == [0, 1, 0, 1, 0, 1]   # the writer's pattern
