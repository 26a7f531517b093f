"""Seed 004 ch.6 (iDARTS): the Neumann implicit hypergradient (eqs. 6.7-6.8), its stochastic form (eq. 6.9), the engine's
`implicit` option and the search extension (Algorithm 6)."""
import itertools
import pytest
import torch
from trustnas_nb.mlo import Level, MLOProblem, hypergradient
from trustnas_nb.idarts import (QuadraticBilevel, SupernetBilevel, hypergradient_estimates, implicit_hypergradient,
                                stochastic_bias, supernet_comparison, reference_table, IDARTSExtension, _flat)


def _neumann(qp, K, batches=None, implicit=True):
    return _flat(hypergradient(qp.levels(), 'alpha', batches, method='neumann', neumann_steps=K, implicit=implicit))


def _eq68_by_hand(qp, w, K):
    "Eq. 6.8 written out with matrices: dL2/da - gamma dL2/dw sum_k (I - gamma A)^k d2L1/dadw, d2L1/dadw = -B."
    A, B, D, g = qp.A, qp.B, qp.D, qp.gamma
    v = D @ (w - qp.y.mean(0))
    M = torch.eye(len(A), dtype=A.dtype) - g * A
    s, term = torch.zeros_like(v), v.clone()
    for _ in range(K + 1): s, term = s + term, M @ term
    return qp.e.mean(0) + qp.kappa * qp.alpha.detach() + g * B.T @ s


@pytest.mark.parametrize('K', [0, 1, 3, 12])
def test_engine_neumann_implicit_is_eq_6_8_at_any_w(K):
    qp = QuadraticBilevel(seed=1)
    w = torch.randn(qp.A.shape[0], dtype=qp.A.dtype, generator=torch.Generator().manual_seed(3))
    qp.set_w(w)
    torch.testing.assert_close(_neumann(qp, K), _eq68_by_hand(qp, w, K), rtol=1e-10, atol=1e-12)


def test_cg_reference_is_the_closed_form():
    qp = QuadraticBilevel(seed=2)
    qp.set_w(qp.w_star())
    g, info = implicit_hypergradient(qp.levels(), None)
    assert not info['negative_curvature']
    torch.testing.assert_close(g, qp.exact(), rtol=1e-8, atol=1e-10)


def test_neumann_converges_to_closed_form_as_K_grows_within_theorem_1():
    qp = QuadraticBilevel(seed=0)
    qp.set_w(qp.w_star())
    exact = qp.exact()
    Ks = [0, 1, 2, 5, 10, 20, 40, 80, 160]
    err = [float((_neumann(qp, K) - exact).norm()) for K in Ks]
    assert all(b < a for a, b in zip(err, err[1:])), err              # monotone in K
    assert err[-1] / float(exact.norm()) < 1e-6
    for K, e in zip(Ks, err): assert e <= qp.neumann_bound(K) * (1 + 1e-9), (K, e, qp.neumann_bound(K))


def test_error_falls_with_T_inner_steps():
    qp = QuadraticBilevel(seed=0)
    exact_at_wstar = qp.exact()
    err = []
    for T in (0, 2, 8, 32, 128, 400):
        qp.inner_steps(T)
        err.append(float((_neumann(qp, 200) - exact_at_wstar).norm() / exact_at_wstar.norm()))
    assert all(b < a for a, b in zip(err, err[1:])), err
    assert err[-1] < 1e-6


def test_implicit_equals_unrolled_neumann_at_a_stationary_point():
    qp = QuadraticBilevel(seed=4)
    qp.set_w(qp.w_star())
    torch.testing.assert_close(_neumann(qp, 7, implicit=True), _neumann(qp, 7, implicit=False), rtol=1e-9, atol=1e-12)
    qp.inner_steps(3)                                                  # away from w*: they differ (the virtual step moves w)
    assert float((_neumann(qp, 7, implicit=True) - _neumann(qp, 7, implicit=False)).norm()) > 1e-3


def test_stochastic_estimate_is_unbiased_over_all_minibatch_pairs():
    "Eq. 6.9 averaged over every (i, j) pair equals eq. 6.8 on the full data (Theorem 2's condition 4 holds here)."
    qp = QuadraticBilevel(seed=5, n_batches=4)
    qp.inner_steps(5)
    for K in (0, 3):
        full = _neumann(qp, K)
        pairs = list(itertools.product(range(qp.n_batches), repeat=2))
        mean = torch.stack([_neumann(qp, K, {'w': j, 'alpha': i}) for i, j in pairs]).mean(0)
        torch.testing.assert_close(mean, full, rtol=1e-9, atol=1e-11)
        assert float(torch.stack([_neumann(qp, K, {'w': j, 'alpha': i}) for i, j in pairs]).std(0).norm()) > 1e-2  # really noisy


def test_stochastic_bias_sampled_and_seeded():
    qp = QuadraticBilevel(seed=0)
    a, b = stochastic_bias(qp, K=4, n_draws=200, seed=1), stochastic_bias(qp, K=4, n_draws=200, seed=1)
    assert a['max_z'] < 4.5 and a['spread_rel'] > 0.05
    torch.testing.assert_close(a['draws'], b['draws'])                 # same seed, same numbers


def test_idarts_is_closer_to_the_implicit_hypergradient_than_darts_on_the_quadratic():
    for seed in range(3):
        qp = QuadraticBilevel(seed=seed)
        qp.inner_steps(30)
        est = hypergradient_estimates(qp.levels(), Ks=(2, 10))
        ref, _ = implicit_hypergradient(qp.levels(), None)            # eq. 6.6 at the same w
        e = {k: float((g - ref).norm() / ref.norm()) for k, g in est.items()}
        assert e['iDARTS K=10'] < e['iDARTS K=2'] < e['DARTS'], e


def test_supernet_proximal_damping_and_comparison():
    torch.set_num_threads(1)
    sn = SupernetBilevel('nb201', 'ci', seed=0, image_size=8, n_train=32, n_val=32, batch_size=16, C=2, layers=1)
    sn.inner_steps(5)
    g0 = _flat(hypergradient(sn.levels(), 'alpha', method='first_order'))
    gw0 = torch.autograd.grad(sn.levels()[0].loss({'w': sn.W, 'alpha': sn.A}, None), list(sn.W.values()))
    sn.damping = 3.0
    gw1 = torch.autograd.grad(sn.levels()[0].loss({'w': sn.W, 'alpha': sn.A}, None), list(sn.W.values()))
    for a, b in zip(gw0, gw1): torch.testing.assert_close(a, b)      # the proximal term leaves the gradient at w_now
    torch.testing.assert_close(_flat(hypergradient(sn.levels(), 'alpha', method='first_order')), g0)
    tab, info = supernet_comparison(sn, Ks=(0, 2, 20), n_draws=1, cg_iters=200)
    e = dict(zip(tab.estimate, tab.rel_error))
    assert info['cg_rel_residual'] < 1e-6 and info['gamma_lmax'] < 1
    assert e['iDARTS K=20'] < e['iDARTS K=2'] < e['iDARTS K=0'] and e['iDARTS K=20'] < e['DARTS']


def test_implicit_option_rejects_bad_input():
    qp = QuadraticBilevel()
    for bad in (1, 'yes', None):
        with pytest.raises(ValueError, match='implicit must be True or False'):
            hypergradient(qp.levels(), 'alpha', method='neumann', implicit=bad)
        with pytest.raises(ValueError, match='implicit must be True or False'):
            MLOProblem(qp.levels(), method='neumann', implicit=bad)
    for m in ('finite_difference', 'exact', 'first_order'):
        with pytest.raises(ValueError, match="option of the 'neumann' method"):
            hypergradient(qp.levels(), 'alpha', method=m, implicit=True)
        with pytest.raises(ValueError, match="option of the 'neumann' method"):
            MLOProblem(qp.levels(), method=m, implicit=True)


def test_problem_step_with_implicit_uses_eq_6_9():
    "MLOProblem(method='neumann', implicit=True).step updates alpha (first, top-down) by eq. 6.9 on the given minibatches."
    qp = QuadraticBilevel(seed=3)
    qp.inner_steps(4)
    want = _neumann(qp, 2, {'w': 0, 'alpha': 1})
    lv = qp.levels()
    lv[0].optimizer, lv[1].optimizer = torch.optim.SGD([qp.w], lr=0.0), torch.optim.SGD([qp.alpha], lr=1.0)
    a0 = qp.alpha.detach().clone()
    MLOProblem(lv, method='neumann', neumann_steps=2, implicit=True).step({'w': 0, 'alpha': 1})
    torch.testing.assert_close(a0 - qp.alpha.detach(), want)


def test_bad_inputs_of_the_module():
    with pytest.raises(ValueError, match='unknown seed-004 ch.6 table'): reference_table('table6_9')
    with pytest.raises(ValueError, match='0 < mu <= L'): QuadraticBilevel(mu=0.0)
    with pytest.raises(ValueError, match='gamma'): QuadraticBilevel(gamma=-1.0)
    with pytest.raises(ValueError, match='d must be an int'): QuadraticBilevel(d=0)
    with pytest.raises(ValueError, match='K must be an int'): hypergradient_estimates(QuadraticBilevel().levels(), Ks=(-1,))
    from types import SimpleNamespace
    m = SimpleNamespace(hypergradient='neumann')
    for opts, msg in ((dict(T=0), 'T'), (dict(K=-1), 'K'), (dict(K=1.5), 'K'), (dict(Z=1), 'unknown iDARTS option'),
                      (dict(implicit='no'), 'implicit')):
        with pytest.raises(ValueError, match=msg): IDARTSExtension(m, None, opts)
    with pytest.raises(ValueError, match="hypergradient 'neumann'"):
        IDARTSExtension(SimpleNamespace(hypergradient='finite_difference'), None, {})


def test_seed_tables_transcribed():
    t = reference_table('s004_table6_1', prefix='')
    r = t.set_index('method')
    assert r.loc['iDARTS', 'c10_test'] == 93.58 and r.loc['DARTS', 'c10_test'] == 54.30 and r.loc['optimal', 'in16_test'] == 47.31
    t3 = reference_table('s004_table6_3', prefix='')
    assert len(t3) == 6 and t3.iloc[4][['T', 'K', 'c10_test']].tolist() == [4, 2, 93.58]
    assert reference_table('s004_table6_2', prefix='').set_index('method').loc['iDARTS', 'c10_err'] == 2.37


def test_search_extension_takes_T_minus_1_extra_weight_steps_and_is_seeded():
    from trustnas_nb.search import run_search
    torch.set_num_threads(1)
    kw = dict(scale='ci', seed=0, progress=False, n_train=64, n_val=64, batch_size=32, epochs=1, max_steps=2, C=2, layers=1)
    r = run_search('idarts', 'nb201', extension=dict(T=3, K=1), **kw)
    h = r.history_frame()
    assert int(h.idarts_extra_w_steps.iloc[-1]) == 2 * 2 and int(h.idarts_T.iloc[-1]) == 3
    r2 = run_search('idarts', 'nb201', extension=dict(T=3, K=1), **kw)
    assert r.genotype_str == r2.genotype_str and h.val_loss.tolist() == r2.history_frame().val_loss.tolist()


def test_reference_table_is_the_frame_it_was():
    "Table 6.1 through `reference.table_frame`, with its shared NB-201 rows from `reference`, equals the frame built inline."
    import pandas as pd
    cols = ['method', 'c10_valid', 'c10_valid_std', 'c10_test', 'c10_test_std', 'c100_valid', 'c100_valid_std',
            'c100_test', 'c100_test_std', 'in16_valid', 'in16_valid_std', 'in16_test', 'in16_test_std']
    want = pd.DataFrame([
        ('ENAS', 37.51, 3.19, 53.89, 0.58, 13.37, 2.35, 13.96, 2.33, 15.06, 1.95, 14.84, 2.10),
        ('RandomNAS', 80.42, 3.58, 84.07, 3.61, 52.12, 5.55, 52.31, 5.77, 27.22, 3.24, 26.28, 3.09),
        ('SETN', 84.04, 0.28, 87.64, 0.00, 58.86, 0.06, 59.05, 0.24, 33.06, 0.02, 32.52, 0.21),
        ('GDAS', 89.88, 0.33, 93.40, 0.49, 70.95, 0.78, 70.33, 0.87, 41.28, 0.46, 41.47, 0.21),
        ('DARTS', 39.77, 0.00, 54.30, 0.00, 15.03, 0.00, 15.61, 0.00, 16.43, 0.00, 16.32, 0.00),
        ('iDARTS', 89.86, 0.60, 93.58, 0.32, 70.57, 0.24, 70.83, 0.48, 40.38, 0.593, 40.89, 0.68),
        ('optimal', 91.61, None, 94.37, None, 74.49, None, 73.51, None, 46.77, None, 47.31, None)],
        columns=['method'] + ['thesis_' + c for c in cols[1:]])
    pd.testing.assert_frame_equal(reference_table('s004_table6_1'), want, check_exact=True)
    t3 = reference_table('s004_table6_3')                                   # its `key` (method, T, K) stays unprefixed
    assert list(t3.columns[:4]) == ['method', 'T', 'K', 'thesis_c10_valid'] and str(t3['T'].dtype) == 'int64'
    with pytest.raises(ValueError, match=r"^unknown seed-004 ch.6 table 'nope'; expected one of s004_table6_1, s004_table6_2, s004_table6_3$"):
        reference_table('nope')
