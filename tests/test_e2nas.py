"""E²NAS (seed 004 ch.4): the VGAE over cell graphs, decoding validity, complementation, novelty, depth, the drivers."""
import math, random
import pytest, torch
from trustnas_nb.e2nas import (GraphSpec, VGAE, cell_graph, graph_row, train_vgae, reconstruction_accuracy, random_cells,
                               LatentSpace, LatentArchive, novelty_terms, gamma_schedule, complement_arch, path_weight_set,
                               cell_depth, depth_slots, depth_loss, e2nas_search, e2nas_r_search, seed_table, vgae_latent_space)
from trustnas_nb.oneshot import sample_arch, arch_genotype, arch_kinds
from trustnas_nb.genotypes import validate_genotype
from trustnas_nb.ops import get_space
from trustnas_nb.search import run_search

# Reconstruction after a short training (fixed seed): held-out random cells, encoded to their posterior means and decoded
# greedily. Measured (1 thread): NB-201 adjacency 0.89, operations 0.70, exact 0.29 (chance: 0.8 / 0.25 / 6e-5);
# DARTS 2-node cells adjacency 0.95-1.0, operations 0.65, exact 0.34; DARTS 4-node cells adjacency 0.72, operations 0.34
# (chance: ~0.5 / 0.14). Thresholds sit a margin below.
RECON = {('nb201', 3): dict(adjacency=0.85, operations=0.55, exact=0.15),
         ('darts', 2): dict(adjacency=0.85, operations=0.40, exact=0.05),
         ('darts', 4): dict(adjacency=0.60, operations=0.20, exact=0.0)}
BUDGET = {('nb201', 3): (1000, 20), ('darts', 2): (600, 15), ('darts', 4): (400, 8)}     # (random training cells, epochs)

@pytest.fixture(scope='module')
def models():
    n = torch.get_num_threads(); torch.set_num_threads(1)              # tiny GRUs: one thread is fastest
    try: yield {k: train_vgae(get_space(k[0], k[1]), n_archs=BUDGET[k][0], epochs=BUDGET[k][1], seed=0, n_test=200) for k in RECON}
    finally: torch.set_num_threads(n)

@pytest.mark.parametrize('key', list(RECON))
def test_vgae_reconstructs_cells(models, key):
    _, st = models[key]
    for metric, thr in RECON[key].items():
        assert st['test'][metric] >= thr, (key, metric, st['test'])
    assert st['log'][-1]['rec'] < 0.8 * st['log'][0]['rec']              # the reconstruction loss fell

@pytest.mark.parametrize('key', list(RECON))
def test_any_latent_point_decodes_to_a_valid_genotype(models, key):
    m, _ = models[key]
    sp = get_space(*key)
    ls = LatentSpace(sp, {k: m for k in arch_kinds(sp)})
    g = torch.Generator().manual_seed(1)
    pts = [torch.randn(ls.shape, generator=g) * s for s in (0.0, 0.5, 1.0, 3.0, 30.0, 1e3, 1e6, 1e30) for _ in range(5)]
    pts += [torch.full(ls.shape, v) for v in (-1e30, 1e30, 0.0)]
    for z in pts:
        arch = ls.decode(z)
        geno = validate_genotype(arch_genotype(arch, sp), sp)
        if key[0] == 'darts':                                          # two distinct inputs per node, never 'none'
            assert all(op != 'none' for op, _ in geno.normal + geno.reduce)
            assert sum(o >= 0 for o in arch[0]) == 2 * sp.n_nodes
        else: assert sum(1 for _ in geno.normal) == sp.n_edges         # every NB-201 edge decided

def test_bad_latent_points_error(models):
    m, _ = models[('nb201', 3)]
    ls = LatentSpace(get_space('nb201', 3), {'normal': m})
    with pytest.raises(ValueError, match='finite'): ls.decode(torch.full(ls.shape, float('nan')))
    with pytest.raises(ValueError, match='finite'): ls.decode(torch.full(ls.shape, float('inf')))
    with pytest.raises(ValueError, match='shape'): ls.decode(torch.zeros(2, 3))

def test_cell_graph_round_trip_and_errors():
    for sp in ('darts', 'nb201'):
        spec = GraphSpec(sp)
        for row in random_cells(sp, 50, seed=3): assert graph_row(*cell_graph(row, spec), spec) == row
    spec = GraphSpec('darts')
    with pytest.raises(ValueError, match='one entry per edge'): cell_graph((0, 1), spec)
    with pytest.raises(ValueError, match='not in'): cell_graph((99,) + (-1,) * 13, spec)
    with pytest.raises(ValueError, match='candidate lists'): GraphSpec('s1')
    with pytest.raises(ValueError, match='n_archs'): train_vgae('nb201', n_archs=0)
    with pytest.raises(ValueError, match='hidden'): VGAE(spec, hidden=0)

def test_vgae_training_is_reproducible():
    a = train_vgae('nb201', n_archs=64, epochs=2, n_test=16, seed=5)
    b = train_vgae('nb201', n_archs=64, epochs=2, n_test=16, seed=5)
    assert a[1]['log'] == b[1]['log']
    assert all(torch.equal(p, q) for p, q in zip(a[0].parameters(), b[0].parameters()))

def test_complement_satisfies_the_set_conditions():
    rng = random.Random(0)
    for sp in ('darts', 'nb201'):
        for _ in range(200):
            prev, cur = sample_arch(sp, rng), sample_arch(sp, rng)
            if rng.random() < 0.5: cur = prev
            c = complement_arch(cur, prev, sp, rng)
            wi, wp, wc = (path_weight_set(a, sp) for a in (cur, prev, c))
            assert wi <= wp | wc and not wp & wc                      # ω_i ⊆ ω_{i-1} ∪ ω_c, ω_{i-1} ∩ ω_c = ∅ (L1303)
            arch_genotype(c, sp)

def test_gamma_schedule_eq_4_16():
    for b in (1, 2, 5, 10):
        for t in (0, 3, 7, 10):
            assert gamma_schedule(t, 10, b) == pytest.approx(1 - 1 / (1 + math.exp(-(t / 10 * 2 - 1) * b)))
    assert gamma_schedule(5, 10, 10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match='gamma'): gamma_schedule(1, 10, static=1.5)

def test_depth_counts_consecutive_intermediate_edges():
    sp = get_space('darts')
    assert [sp.edges[e] for e in depth_slots(sp)] == [(2, 3), (3, 4), (4, 5)]
    from trustnas_nb.genotypes import parse_genotype
    deep = parse_genotype("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2), ('sep_conv_3x3', 1), "
                          "('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('sep_conv_3x3', 4), ('sep_conv_3x3', 1)], normal_concat=[2, 3, 4, 5], "
                          "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
                          "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
    assert cell_depth(deep, sp) == 3

def test_novelty_is_lower_far_from_the_archive(models):
    m, _ = models[('nb201', 3)]
    ls = LatentSpace(get_space('nb201', 3), {'normal': m})
    A = LatentArchive(20)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        z = 0.1 * torch.randn(ls.shape, generator=g); a = ls.decode(z)
        A.add(z, float(torch.linalg.vector_norm(ls.arch_encoding(a) - ls.decoder_output(z, a))))
    near, far = torch.zeros(ls.shape), torch.full(ls.shape, 3.0)
    t_near, t_far = novelty_terms(ls, near, ls.decode(near), A), novelty_terms(ls, far, ls.decode(far), A)
    assert t_far['log_p_latent'] < t_near['log_p_latent']              # the archive's latent density falls away from it
    z = near.clone().requires_grad_(True)
    novelty_terms(ls, z, ls.decode(near), A)['L_N'].backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0     # L_N is differentiable in α_θ (log-det term included)

def test_search_same_seed_same_result_and_runs_via_run_search(tmp_path):
    import json
    from trustnas_nb.core import progress_to
    kw = dict(scale='ci', seed=0, progress=False, nodes=3, layers=5, n_train=32, n_val=32, batch_size=16, epochs=1)
    progress_to(tmp_path/'p.jsonl')
    try: r1 = e2nas_search('nb201', **kw)
    finally: progress_to(None)
    evs = [json.loads(l) for l in (tmp_path/'p.jsonl').read_text().splitlines()]    # one event per epoch: here the first and last
    assert [(e['what'], e['done'], e['total'], e['method'], e['seed']) for e in evs] == [('search e2nas', 1, 1, 'e2nas', 0)]
    assert evs[0]['train_loss'] == round(r1.history[0]['train_loss'], 4) and evs[0]['val_loss'] == round(r1.history[0]['val_loss'], 4)
    r2 = run_search('e2nas', 'nb201', **kw)
    assert r1.trace['paths'] == r2.trace['paths'] and r1.genotype_str == r2.genotype_str
    assert all('step_seconds' in h for h in r1.history if h.get('phase') != 'final')
    validate_genotype(r1.genotype, get_space('nb201', 3))
    r3 = run_search('e2nas_r', 'darts', scale='ci', seed=1, progress=False, nodes=2, n_train=32, n_val=32, batch_size=16, epochs=1,
                    extension=dict(depth_samples=2))
    assert r3.method == 'e2nas_r' and r3.history[-1]['phase'] == 'final'

def test_bad_options_error():
    with pytest.raises(ValueError, match='bogus'): e2nas_search('nb201', options=dict(bogus=1))
    with pytest.raises(ValueError, match='eps'): e2nas_search('nb201', options=dict(eps=-0.1))
    with pytest.raises(ValueError, match='gamma'): e2nas_search('nb201', options=dict(gamma=2.0))
    with pytest.raises(ValueError, match='z_lr'): e2nas_r_search('darts', options=dict(z_lr=0.0))
    with pytest.raises(ValueError, match='unknown seed-004'): seed_table('nope')
    assert seed_table('s004_table4_1').set_index('method').loc['E2NAS', 'seed_c10_test'] == 93.89


def test_seed_table_is_the_frame_it_was():
    "Table 4.1 through `reference.table_frame`, with its shared NB-201 rows from `reference`, equals the frame built inline."
    import pandas as pd
    cols = ['method', 'c10_valid', 'c10_valid_std', 'c10_test', 'c10_test_std', 'c100_valid', 'c100_valid_std',
            'c100_test', 'c100_test_std', 'in16_valid', 'in16_valid_std', 'in16_test', 'in16_test_std']
    want = pd.DataFrame([
        ('ENAS', 37.51, 3.19, 53.89, 0.58, 13.37, 2.35, 13.96, 2.33, 15.06, 1.95, 14.84, 2.10),
        ('RandomNAS*', 85.63, 0.44, 88.58, 0.21, 60.99, 2.79, 61.45, 2.24, 31.63, 2.15, 31.37, 2.51),
        ('DARTS (1st)', 39.77, 0.00, 54.30, 0.00, 15.03, 0.00, 15.61, 0.00, 16.43, 0.00, 16.32, 0.00),
        ('DARTS (2nd)', 39.77, 0.00, 54.30, 0.00, 15.03, 0.00, 15.61, 0.00, 16.43, 0.00, 16.32, 0.00),
        ('SETN', 84.04, 0.28, 87.64, 0.00, 58.86, 0.06, 59.05, 0.24, 33.06, 0.02, 32.52, 0.21),
        ('NAO*', 82.04, 0.21, 85.74, 0.31, 56.36, 3.14, 59.64, 2.24, 30.14, 2.02, 31.35, 2.21),
        ('GDAS*', 90.03, 0.13, 93.37, 0.42, 70.79, 0.83, 70.35, 0.80, 40.90, 0.33, 41.11, 0.13),
        ('E2NAS', 90.94, 0.83, 93.89, 0.47, 71.83, 1.84, 72.05, 1.58, 45.44, 1.24, 45.77, 1.00)],
        columns=['method'] + ['seed_' + c for c in cols[1:]])
    pd.testing.assert_frame_equal(seed_table('s004_table4_1'), want, check_exact=True)
    t2 = seed_table('s004_table4_2')                                            # `method` and `setting` stay unprefixed
    assert list(t2.columns) == ['method', 'setting', 'seed_c10_test', 'seed_c10_test_std', 'seed_c10_best', 'seed_c10_best_std',
                                'seed_c100_test', 'seed_c100_test_std', 'seed_in16_test', 'seed_in16_test_std']
    assert t2.set_index(['method', 'setting']).loc[('E2NAS', 'Sig(2)'), 'seed_c10_best'] == 94.29
    assert seed_table('s004_table4_6')['seed_c10_test_err_std'].isna().tolist() == [False, True, False, False, False]
    with pytest.raises(ValueError, match=r"^unknown seed-004 chapter-4 table 'nope'; expected one of s004_table4_1, s004_table4_2, s004_table4_6$"):
        seed_table('nope')
