"Seed 004 ch.2 (EN²AS) and ch.3 (NSAS): the NSAS loss, the constraint archive, the ES step, sampled paths, determinism."
import itertools, random
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from trustnas_nb.ops import get_space
from trustnas_nb.genotypes import validate_genotype
from trustnas_nb.supernet import build_supernet
from trustnas_nb.oneshot import (sample_arch, check_arch, arch_weights, arch_genotype, genotype_arch, nsas_distance, novelty,
                                 diversity, most_diverse, ConstraintArchive, nsas_loss, nsas_backward, es_update, theta_arch,
                                 NoveltySampler, gumbel_path, mutate_arch, nsas_search, en2as_search, forgetting,
                                 oneshot_table, ONESHOT_REFERENCE)

pytestmark = pytest.mark.usefixtures('one_thread')     # tiny tensors: one thread is fastest on a busy machine
NB = 'nb201'

@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    sp = get_space('darts', 2)
    net = build_supernet(sp, C=4, num_classes=5, layers=3, in_channels=3)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    return sp, net, x, y

def _grads(net, f):
    net.zero_grad(set_to_none=True); f()
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in net.weights()]

# ---------------------------------------------------------------- NSAS loss, eq. 3.6
def test_nsas_loss_beta0_is_plain_loss(tiny):
    sp, net, x, y = tiny
    w0 = arch_weights(sample_arch(sp, 0), net); cw = [arch_weights(sample_arch(sp, i), net) for i in (1, 2, 3)]
    with torch.no_grad(): plain = float(F.cross_entropy(net(x, w0), y))
    with torch.no_grad(): assert float(nsas_loss(net, x, y, w0, cw, beta=0.0)) == pytest.approx(plain, abs=1e-6)
    g_plain = _grads(net, lambda: F.cross_entropy(net(x, w0), y).backward())
    g_nsas = _grads(net, lambda: nsas_backward(net, x, y, w0, cw, beta=0.0))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g_plain, g_nsas))
    # β = 0 must not touch the weights only the constraints use
    only_c = [i for i, (a, b) in enumerate(zip(g_plain, _grads(net, lambda: nsas_backward(net, x, y, w0, cw, beta=0.5))))
              if float(a.abs().sum()) == 0 and float(b.abs().sum()) > 0]
    assert only_c, "the constraint paths should reach weights the current path does not use"
    assert all(float(g_nsas[i].abs().sum()) == 0 for i in only_c)

def test_nsas_loss_matches_eq_3_6(tiny):
    sp, net, x, y = tiny
    w0 = arch_weights(sample_arch(sp, 0), net); cw = [arch_weights(sample_arch(sp, i), net) for i in (1, 2)]
    with torch.no_grad():
        L = [float(F.cross_entropy(net(x, w), y)) for w in [w0] + cw]
        beta = 0.3
        hand = (1 - beta) * L[0] + beta / 2 * (L[1] + L[2])
        assert float(nsas_loss(net, x, y, w0, cw, beta=beta)) == pytest.approx(hand, rel=1e-5)
    g1 = _grads(net, lambda: nsas_loss(net, x, y, w0, cw, beta=beta).backward())
    g2 = _grads(net, lambda: nsas_backward(net, x, y, w0, cw, beta=beta))
    assert max(float((a - b).abs().max()) for a, b in zip(g1, g2)) < 1e-5
    for bad in (-0.1, 1.5, True, 'x'):
        with pytest.raises(ValueError, match='beta'): nsas_loss(net, x, y, w0, cw, beta=bad)

# ---------------------------------------------------------------- distance and archive, eqs. 3.4-3.5, Algorithms 2-3
def test_nsas_distance_by_hand():
    a = ((0, 1, 2, 3, 4, 0),)
    assert nsas_distance(a, a, NB) == 0
    assert nsas_distance(a, ((1, 1, 2, 3, 4, 0),), NB) == 1          # one edge, one operation changed
    assert nsas_distance(a, ((1, 2, 3, 4, 0, 1),), NB) == 6          # every edge changed
    assert nsas_distance(((0,) * 6,), ((1,) * 6,), NB) == nsas_distance(((1,) * 6,), ((0,) * 6,), NB)
    sp = get_space('darts', 2)                                        # DARTS: the same op from another input node differs
    a = sample_arch(sp, 0); b = sample_arch(sp, 1)
    assert nsas_distance(a, b, sp) == nsas_distance(b, a, sp) >= 0
    assert nsas_distance(a, a, sp) == 0
    assert novelty(a, [a, b], lambda u, v: nsas_distance(u, v, sp), k=1) == 0
    assert novelty(a, [], lambda u, v: 0.0) == 0.0

def _brute_best_swap(members, m, cands, dist):
    others = members[:m] + members[m + 1:]
    return max(diversity(others + [c], dist) for c in [members[m]] + list(cands))

def test_archive_each_replacement_is_best_single_swap():
    "Algorithm 2 with k = M − 1: every update leaves the archive at the brute-force best choice for the refilled slot."
    rng = random.Random(3)
    arc = ConstraintArchive(3, NB, recent=6)
    prev = None
    for t in range(40):
        a = sample_arch(NB, rng)
        if arc.full:
            members = list(arc.members)
            m = min(range(arc.M), key=lambda j: arc.distance(a, members[j]))
            target = _brute_best_swap(members, m, list(arc.recent) + [a], arc.distance)
        arc.update(a)
        if prev is not None:
            assert arc.diversity() == pytest.approx(target)
            assert arc.diversity() >= prev - 1e-9                     # eq. 3.4 never decreases
        prev = arc.diversity() if arc.full else None
    assert len(arc.members) == 3 and arc.replacements > 0

def test_archive_finds_brute_force_optimum_on_small_pools():
    "NB-201 (L870): with M = 5 the most diverse archive is the five all-different-operation cells; greedy finds it."
    disjoint = [((o,) * 6,) for o in range(5)]
    for trial in range(5):
        rng = random.Random(trial)
        pool = [sample_arch(NB, rng) for _ in range(6)] + disjoint
        rng.shuffle(pool)
        arc = ConstraintArchive(5, NB, recent=len(pool))
        for _ in range(2):
            for a in pool: arc.update(a)
        best = most_diverse(pool, 5, arc.distance)
        assert sorted(best) == sorted(disjoint)                       # brute force agrees with the construction
        assert sorted(arc.members) == sorted(disjoint)
    # M = 3 on random pools: the greedy archive reaches the exact optimum of eq. 3.4 (brute force over all 3-subsets)
    hits = 0
    for trial in range(10):
        rng = random.Random(100 + trial)
        pool = [sample_arch(NB, rng) for _ in range(8)]
        arc = ConstraintArchive(3, NB, recent=len(pool))
        for _ in range(2):
            for a in pool: arc.update(a)
        opt = max(diversity(list(c), arc.distance) for c in itertools.combinations(pool, 3))
        assert arc.diversity() <= opt + 1e-9
        assert arc.diversity() >= 0.8 * opt                           # a local rule: close to the optimum ...
        hits += arc.diversity() == opt
    assert hits >= 7                                                  # ... and at it in most pools

def test_most_diverse_brute_force():
    pool = [((0,) * 6,), ((0,) * 5 + (1,),), ((1,) * 6,), ((2,) * 6,)]
    d = lambda a, b: nsas_distance(a, b, NB)
    assert sorted(most_diverse(pool, 3, d)) == sorted([((0,) * 6,), ((1,) * 6,), ((2,) * 6,)])
    assert diversity(pool[:2], d) == 1
    with pytest.raises(ValueError, match='M'): most_diverse(pool, 5, d)
    with pytest.raises(ValueError, match='M'): ConstraintArchive(0, NB)

# ---------------------------------------------------------------- EN²AS, eqs. 2.4-2.6
def test_es_update_hand_computation():
    theta = np.array([[1.0, -1.0, 0.5]])
    eps = np.array([[[1.0, 0.0, 2.0]], [[0.0, -1.0, 1.0]], [[-1.0, 1.0, 0.0]]])
    nov = [1.0, 2.0, 3.0]; sigma, gamma = 0.5, 0.3
    # γ/(nσ) = 0.3/1.5 = 0.2; Σ N_i ε_i = (1 − 3, −2 + 3, 2 + 2) = (−2, 1, 4)
    expect = theta + 0.2 * np.array([[-2.0, 1.0, 4.0]])
    assert np.allclose(es_update(theta, eps, nov, sigma, gamma), expect)
    assert np.allclose(expect, [[0.6, -0.8, 1.3]])
    with pytest.raises(ValueError, match='sigma'): es_update(theta, eps, nov, 0.0, gamma)
    with pytest.raises(ValueError, match='eps'): es_update(theta, eps[:, :, :2], nov, sigma, gamma)

def test_novelty_sampler_applies_eq_2_6():
    "One ES step of the sampler, replayed by hand from its random stream."
    ns = NoveltySampler(NB, S=3, n=4, sigma=0.5, gamma=0.2, k=2, seed=7)
    for _ in range(3): ns()
    rng = np.random.default_rng(7)
    thetas = [rng.standard_normal(ns.shape) for _ in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(thetas, ns.archive))
    A = [ns._b(t) for t in thetas]
    m = int(rng.integers(3)); eps = rng.standard_normal((4, *ns.shape))
    dist = lambda u, v: float(np.linalg.norm(u - v))
    nov = [np.mean(sorted(dist(ns._b(thetas[m] + 0.5 * e), b) for b in A)[:2]) for e in eps]
    new = thetas[m] + 0.2 / (4 * 0.5) * sum(n * e for n, e in zip(nov, eps))
    arch = ns()
    assert np.allclose(ns.archive[m], new)
    assert arch == theta_arch(new, NB)

# ---------------------------------------------------------------- validity of every sampled path
@pytest.mark.parametrize('space,nodes', [('darts', 2), ('darts', 4), ('nb201', None)])
def test_sampled_archs_valid(space, nodes):
    sp = get_space(space, nodes) if nodes else get_space(space)
    rng = random.Random(0)
    ns = NoveltySampler(sp, S=3, n=3, seed=1)
    archs = [sample_arch(sp, rng) for _ in range(30)] + [ns() for _ in range(15)]
    archs += [mutate_arch(a, sp, rng) for a in archs[:20]]
    archs += [theta_arch(np.random.default_rng(i).standard_normal(ns.shape), sp) for i in range(5)]
    for a in archs:
        check_arch(a, sp)
        g = validate_genotype(arch_genotype(a, sp), sp)
        assert genotype_arch(g, sp) == a
        for row, kind in zip(a, ('normal', 'reduce')):
            ops = sp.ops(kind == 'reduce')
            for node in range(sp.n_nodes):
                es = [e for e, (_, d) in enumerate(sp.edges) if d == node + sp.n_inputs]
                active = [e for e in es if row[e] >= 0]
                if sp.discretize == 'argmax': assert active == es
                else:
                    assert len(active) == min(sp.edges_per_node, len(es))
                    assert all(ops[e][row[e]] != 'none' for e in active)
    with pytest.raises(ValueError, match='edge'): check_arch(((0,) * 5,), NB)
    with pytest.raises(ValueError, match='operation index'): check_arch(((9,) * 6,), NB)

def test_gumbel_path_is_one_hot_forward_soft_backward(tiny):
    sp, net, x, y = tiny
    W, arch = gumbel_path(net, 1.0, torch.Generator().manual_seed(0))
    for kind, row in zip(net.cell_kinds, arch):
        assert torch.allclose(W[kind].detach().sum(-1), torch.ones(sp.n_edges))
        assert all(sp.ops(kind == 'reduce')[e][o] != 'none' for e, o in enumerate(row))
    F.cross_entropy(net(x, W), y).backward()
    assert net.alpha_normal.grad is not None and float(net.alpha_normal.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match='tau'): gumbel_path(net, 0.0)

# ---------------------------------------------------------------- drivers: determinism, forgetting probes, options
KW = dict(scale='ci', progress=False, epochs=2, n_train=64, n_val=32, batch_size=16, C=4, layers=3, nodes=2, image_size=8,
          dataset='digits', max_steps=None)

def test_same_seed_same_result():
    a = nsas_search(NB, seed=1, options=dict(M=2, beta=0.5), **KW)
    b = nsas_search(NB, seed=1, options=dict(M=2, beta=0.5), **KW)
    c = nsas_search(NB, seed=2, options=dict(M=2, beta=0.5), **KW)
    assert a.genotype == b.genotype and a.trace['paths'] == b.trace['paths'] and a.trace['archive'] == b.trace['archive']
    assert [r.get('train_loss') for r in a.history] == [r.get('train_loss') for r in b.history]
    assert a.trace['paths'] != c.trace['paths']
    e1 = en2as_search('darts', seed=0, **KW); e2 = en2as_search('darts', seed=0, **KW)
    assert e1.genotype == e2.genotype and e1.trace['paths'] == e2.trace['paths']
    assert [r.get('train_loss') for r in e1.history] == [r.get('train_loss') for r in e2.history]
    g1 = nsas_search('darts', seed=0, options=dict(variant='gdas'), **KW)
    g2 = nsas_search('darts', seed=0, options=dict(variant='gdas'), **KW)
    assert g1.genotype == g2.genotype and g1.trace['paths'] == g2.trace['paths']

def test_nsas_changes_only_the_loss_and_probes_measure_forgetting():
    probe = dict(probe_every=1, horizon=2, n_fixed=2)
    r0 = nsas_search(NB, seed=0, options=dict(M=2, beta=0.0, **probe), **KW)
    r1 = nsas_search(NB, seed=0, options=dict(M=2, beta=0.5, **probe), **KW)
    assert r0.trace['paths'] == r1.trace['paths']                     # same visited architectures
    assert r0.history[0]['train_loss'] != r1.history[0]['train_loss']
    f = forgetting(r1)
    assert f['n'] == len(f['probes']) > 0
    assert np.allclose(f['probes']['drop'], f['probes'].acc_after - f['probes'].acc_later)
    assert set(f['fixed'].arch) == {0, 1}
    with pytest.raises(ValueError, match='probe'): forgetting(nsas_search(NB, seed=0, **KW))

def test_bad_options():
    with pytest.raises(ValueError, match='variant'): nsas_search(NB, options=dict(variant='adam'))
    with pytest.raises(ValueError, match='bogus'): nsas_search(NB, options=dict(bogus=1))
    with pytest.raises(ValueError, match='beta'): nsas_search(NB, options=dict(beta=2.0))
    with pytest.raises(ValueError, match='sampler'): en2as_search(NB, options=dict(sampler='greedy'))
    with pytest.raises(ValueError, match='argmax'): nsas_search(NB, options=dict(selection='argmax'))

def test_reference_tables():
    for name in ONESHOT_REFERENCE:
        df = oneshot_table(name)
        assert len(df) == len(ONESHOT_REFERENCE[name]['rows']) and all(c.startswith('seed_') for c in df.columns[1:])
    t = oneshot_table('s004_table3_3').set_index('method')
    assert t.loc['RandomNAS-NSAS', 'seed_cifar10_test_acc'] == 92.61 and t.loc['GDAS', 'seed_cifar10_test_acc'] == 93.40
    with pytest.raises(ValueError, match='s004'): oneshot_table('table9')

def test_reference_table_is_the_frame_it_was():
    "`oneshot_table` (now `reference.table_frame`) returns the frame the former inline code built: first column unprefixed."
    import pandas as pd
    want = pd.DataFrame([('RandomNAS', 88.14, 0.21, 63.40, 4.52), ('RandomNAS-NSAS', 92.61, 0.10, 68.47, 1.73),
                         ('GDAS', 93.40, 0.49, 70.33, 0.87), ('GDAS-NSAS', 93.55, 0.16, 70.69, 0.33)],
                        columns=['method', 'seed_cifar10_test_acc', 'seed_cifar10_test_acc_std', 'seed_cifar100_test_acc',
                                 'seed_cifar100_test_acc_std'])
    pd.testing.assert_frame_equal(oneshot_table('s004_table3_3'), want, check_exact=True)
    with pytest.raises(ValueError, match=r"^unknown seed-004 one-shot table 'nope'; expected one of s004_table2_1, s004_table2_3, "):
        oneshot_table('nope')

def test_driver_reports_its_progress_per_epoch(tmp_path):
    "One `core.progress` event per supernet epoch (the first and the last always pass the throttle), named by the method."
    import json
    from trustnas_nb.core import progress_to
    progress_to(tmp_path/'p.jsonl')
    try: r = nsas_search('darts', seed=4, options=dict(variant='gdas'), **KW)          # GDAS-NSAS: M = 2, beta = 0.2
    finally: progress_to(None)
    evs = [json.loads(l) for l in (tmp_path/'p.jsonl').read_text().splitlines()]
    assert [(e['what'], e['done'], e['total'], e['method'], e['seed']) for e in evs] == \
           [('search gdas_nsas', 1, 2, 'gdas_nsas', 4), ('search gdas_nsas', 2, 2, 'gdas_nsas', 4)]
    sup = [h for h in r.history if h.get('phase') == 'supernet']
    assert [e['train_loss'] for e in evs] == [round(h['train_loss'], 4) for h in sup]
