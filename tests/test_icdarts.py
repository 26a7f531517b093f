"""CDARTS / ICDARTS (seed 003 §3.1-3.2): the cyclic extension of the DARTS driver and the zero-operation configurations V0-V4."""
import math
from types import SimpleNamespace
import pytest
import torch
import torch.nn.functional as F
from trustnas_nb.core import preset
from trustnas_nb.ops import get_space, OPS
from trustnas_nb.genotypes import validate_genotype, parse_genotype
from trustnas_nb.search import METHODS, search_data, run_search
from trustnas_nb.supernet import build_supernet
from trustnas_nb.evalnet import build_network
from trustnas_nb.icdarts import (CyclicExtension, kd_loss, zero_space, discretize_zero, count_ops, cyclic_search, ROUTES,
                                 ZERO_CONFIGS, RandomActivation, check_cyclic_options, seed_table, ICDARTS_REFERENCE)

torch.set_num_threads(1)


def make_ext(name='icdarts', zero='V0', **opts):
    "A CyclicExtension on a real ci-sized supernet and the ci search data, outside the driver (what `_search_stage` builds)."
    P = preset('ci', 'search')
    sp = zero_space(get_space('darts', P['nodes']), zero)
    torch.manual_seed(0)
    train_dl, val_dl, nc, ch = search_data(P, 0)
    net = build_supernet(sp, C=P['C'], num_classes=nc, layers=P['layers'], in_channels=ch)
    w_opt = torch.optim.SGD(net.weights(), lr=P['w_lr'], momentum=0.9)
    fwd = lambda params, x: torch.func.functional_call(net, params, (x,), strict=False)
    ctx = SimpleNamespace(net=net, space=sp, P=P, seed=0, dev=torch.device('cpu'), train_dl=train_dl, val_dl=val_dl, nc=nc,
                          ch=ch, epochs=1, layers=P['layers'], w_opt=w_opt, forward=fwd, build=None)
    o = preset('ci', name).replace(**{'pretrain_steps': 0, 'S_E': 0, 'zero': zero, **opts})
    ext = CyclicExtension(METHODS[name], ctx, o)
    dt = torch.get_default_dtype()                     # float64 under the `f64` fixture (exact gradient comparisons)
    bt, bv = [[t.to(dt) if t.is_floating_point() else t for t in b] for b in (next(iter(train_dl)), next(iter(val_dl)))]
    return ext, net, bt, bv


@pytest.fixture
def f64():
    "Build networks in float64: gradients computed along two different graphs are compared to 1e-9, not float32 noise."
    old = torch.get_default_dtype(); torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def favour(net, op):
    "Set α so that `op` is the strongest candidate on every edge of both cells."
    with torch.no_grad():
        for kind in ('normal', 'reduce'):
            a = getattr(net, f'alpha_{kind}'); ops = net.space.ops(kind == 'reduce')[0]
            a.zero_(); a[:, ops.index(op)] = 5.0


def Pm(net):
    return {'w': dict(net.named_weights()), 'alpha': dict(net.named_arch_parameters())}


def e_params(ext): return list(ext.E.parameters())


def test_kd_matches_hand_computation():
    fS = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]], dtype=torch.float64); fE = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    for T in (1.0, 2.0, 4.0):
        p = torch.softmax(fE / T, 1); q = torch.softmax(fS / T, 1)
        hand = T ** 2 / 2 * sum(float(p[i, c]) * math.log(float(p[i, c]) / float(q[i, c])) for i in range(2) for c in range(3))
        assert float(kd_loss(fS, fE, T)) == pytest.approx(hand, rel=1e-6)
    assert float(kd_loss(fS, fS, 3.0)) == pytest.approx(0.0, abs=1e-7)
    # teacher = evaluation network (eq. 3.8): KL(p_E || q_S), not the reverse
    assert float(kd_loss(fS, fE, 1.0)) == pytest.approx(float(F.kl_div(F.log_softmax(fS, 1), F.log_softmax(fE, 1), log_target=True, reduction='batchmean')), rel=1e-6)
    with pytest.raises(ValueError, match='temperature T must be > 0'): kd_loss(fS, fE, 0.0)


def test_icdarts_rebuilds_eval_network_from_current_alpha_every_S_U_steps():
    ext, net, bt, bv = make_ext('icdarts', 'V0', S_U=3)
    favour(net, 'sep_conv_3x3')
    steps = []
    for i in range(7):
        if i == 2: favour(net, 'max_pool_3x3')           # α changes between generations
        ext.before_step(i, 0, bt, bv)
        steps.append((i, id(ext.E), ext.eval_genotype))
        ext.after_step(i, 0, bt, bv, {})
    assert ext.rebuilds == [0, 3, 6]
    assert steps[0][1] == steps[1][1] == steps[2][1] != steps[3][1]                 # same E between generations
    assert {op for op, _ in steps[0][2].normal + steps[0][2].reduce} == {'sep_conv_3x3'}
    assert {op for op, _ in steps[3][2].normal + steps[3][2].reduce} == {'max_pool_3x3'}   # regenerated from the new α
    assert steps[3][2] == net.genotype()


def test_icdarts_eval_weights_get_no_gradient_from_the_search_loss(f64):
    ext, net, bt, bv = make_ext('icdarts', 'V0')
    ext.before_step(0, 0, bt, bv)
    La, Lw = ext.a_loss(None, Pm(net), bv), ext.w_loss(None, Pm(net), bt)
    for L in (La, Lw):
        assert all(g is None for g in torch.autograd.grad(L, e_params(ext), retain_graph=True, allow_unused=True))
    # the KD term is in both α's (eq. 3.9) and w_S's (eq. 3.10) losses
    with torch.no_grad(): f_S_v, f_E_v = ext.ctx.forward({**Pm(net)['w'], **Pm(net)['alpha']}, bv[0]), ext.E(bv[0])
    assert float(La.detach()) == pytest.approx(float(F.cross_entropy(f_S_v, bv[1]) + kd_loss(f_S_v, f_E_v, 2.0)), rel=1e-9)
    # w_E's only update: one step of its own training loss (eq. 3.11) on the step's training batch
    seen = []; ext._e_step = lambda gs: seen.append(gs)
    ext.after_step(0, 0, bt, bv, {})
    want = torch.autograd.grad(F.cross_entropy(ext.E(bt[0]), bt[1]), e_params(ext), allow_unused=True)
    for g, w in zip(seen[0], want):
        assert (g is None and w is None) or torch.allclose(g, w, rtol=1e-9, atol=1e-12)


def test_cdarts_eval_weights_take_the_joint_loss_gradient(f64):
    ext, net, bt, bv = make_ext('cdarts', 'V0')
    ext.before_step(0, 0, bt, bv)
    La = ext.a_loss(None, Pm(net), bv)
    gE = torch.autograd.grad(La, e_params(ext), retain_graph=True, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gE)                 # E's weights are in α's joint loss (eq. 3.6)
    Lw = ext.w_loss(None, Pm(net), bt)                                          # w_S: plain L^S_train (eq. 3.4)
    assert all(g is None for g in torch.autograd.grad(Lw, e_params(ext), allow_unused=True))
    seen = []; ext._e_step = lambda gs: seen.append(gs)
    ext.after_step(0, 0, bt, bv, {})
    for g, w in zip(seen[0], gE):                                               # w_E's step = ∂(joint loss)/∂w_E
        assert (g is None and w is None) or torch.allclose(g, w, rtol=1e-9, atol=1e-12)


def _joint_steps(name, lam, n=2):
    "n steps of Algorithm 1 through the hooks (α: Adam on a_loss, w_S: SGD on w_loss, w_E: after_step); E built once (S_U > n)."
    ext, net, bt, bv = make_ext(name, 'V1', lam=lam, S_U=100)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=0.05)
    for i in range(n):
        ext.before_step(i, 0, bt, bv)
        a_opt.zero_grad(); ext.a_loss(None, Pm(net), bv).backward(); a_opt.step()
        ext.ctx.w_opt.zero_grad(); ext.w_loss(None, Pm(net), bt).backward(); ext.ctx.w_opt.step()
        ext.after_step(i, 0, bt, bv, {})
    return ext.E.state_dict(), [a.detach().clone() for a in net.arch_parameters()]


def test_eval_network_is_independent_of_the_kd_weight_only_under_icdarts(f64):
    "ICDARTS (eq. 3.11): w_E follows its own training loss, so λ cannot reach it; CDARTS (eq. 3.6): λ L^{S,E} trains w_E."
    E0, a0 = _joint_steps('icdarts', 0.0); E5, a5 = _joint_steps('icdarts', 5.0)
    assert all(torch.equal(E0[k], E5[k]) for k in E0)                           # bit-identical evaluation network
    assert any(not torch.equal(x, y) for x, y in zip(a0, a5))                  # while λ does move α (eq. 3.9)
    C0, _ = _joint_steps('cdarts', 0.0); C5, _ = _joint_steps('cdarts', 5.0)
    assert any(not torch.allclose(C0[k], C5[k]) for k in C0 if C0[k].is_floating_point())


@pytest.mark.parametrize('route', list(ROUTES))
def test_routes_put_the_kd_term_where_table_3_6_says(route):
    ext, net, bt, bv = make_ext('icdarts', 'V0', route=route)
    ext.before_step(0, 0, bt, bv)
    r = ROUTES[route]
    Lw = ext.w_loss(None, Pm(net), bt)
    live_w = any(g is not None for g in torch.autograd.grad(Lw, e_params(ext), retain_graph=True, allow_unused=True))
    La = ext.a_loss(None, Pm(net), bv)
    live_a = any(g is not None for g in torch.autograd.grad(La, e_params(ext), allow_unused=True))
    assert live_a == (r['we_kd'] and r['we_data'] == 'val') and live_w == (r['we_kd'] and r['we_data'] == 'train')
    with torch.no_grad(): f_S = ext.ctx.forward({**Pm(net)['w'], **Pm(net)['alpha']}, bt[0])
    with torch.no_grad(): plain = float(F.cross_entropy(f_S, bt[1])) + (float(F.cross_entropy(ext.E(bt[0]), bt[1])) if live_w else 0.0)
    assert (abs(float(Lw.detach()) - plain) > 1e-4) == r['ws_kd']


def test_zero_configurations_derive_valid_genotypes_and_behave_as_table_3_1():
    for z in ZERO_CONFIGS:
        ext, net, bt, bv = make_ext('icdarts', z)
        ops = set(net.space.primitives)
        assert ('none' in ops) == (z == 'V0') and ('random' in ops) == (z in ('V2', 'V3', 'V4'))
        cand = 'random' if z in ('V2', 'V3', 'V4') else 'none' if z == 'V0' else 'sep_conv_3x3'
        favour(net, cand)                                            # the zero/random op wins every edge
        ext.before_step(0, 0, bt, bv)
        g_eval, g_ret = ext.eval_genotype, ext.genotype(net)
        for g in (g_eval, g_ret): validate_genotype(g)
        expect = {'V0': (0, 0, 0, 0), 'V1': (0, 0, 0, 0), 'V2': (8, 0, 8, 0), 'V3': (8, 0, 0, 8), 'V4': (0, 8, 0, 8)}[z]
        got = (count_ops(g_eval, ('random',)), count_ops(g_eval, ('none',)), count_ops(g_ret, ('random',)), count_ops(g_ret, ('none',)))
        assert got == expect, (z, got)
        out = build_network(g_ret, C=4, layers=3, num_classes=10, in_channels=1)(bt[0])
        assert out.shape == (len(bt[0]), 10) and torch.isfinite(out).all()
    x = torch.zeros(2, 3, 8, 8); y = RandomActivation(2)(x)
    assert y.shape == (2, 3, 4, 4) and 0 <= float(y.min()) and float(y.max()) < 1 and float(y.std()) > 0
    assert OPS['random'](3, 1, True, True)(x).shape == x.shape


def test_search_runs_logs_rebuilds_and_is_deterministic():
    a = cyclic_search('icdarts', 'V4', scale='ci', seed=1, progress=False, epochs=2, extension=dict(S_U=1))
    b = cyclic_search('icdarts', 'V4', scale='ci', seed=1, progress=False, epochs=2, extension=dict(S_U=1))
    h = a.history_frame()
    assert list(h.eval_rebuilds) == [2, 2] and h.eval_rebuilt.all()
    assert all(0 <= v <= 1 for v in h.eval_acc) and (h.zero == 'V4').all() and (h.route == 'icdarts').all()
    assert a.genotype == b.genotype and list(h.eval_acc) == list(b.history_frame().eval_acc)
    assert count_ops(a.genotype, ('random',)) == 0                  # V4 retrains with zero in place of random
    c = run_search('cdarts', 'darts', scale='ci', seed=0, progress=False)     # V0 inferred from the plain DARTS space
    assert (c.history_frame().zero == 'V0').all() and count_ops(c.genotype) == 0


def test_bad_options_give_clear_errors():
    with pytest.raises(ValueError, match='option T'): run_search('icdarts', scale='ci', progress=False, extension=dict(T=0.0))
    with pytest.raises(ValueError, match='option lam'): run_search('icdarts', scale='ci', progress=False, extension=dict(lam=-1.0))
    with pytest.raises(ValueError, match='option S_U must be an int >= 1'): run_search('cdarts', scale='ci', progress=False, extension=dict(S_U=0))
    with pytest.raises(ValueError, match="unknown zero configuration 'V9'"): cyclic_search('icdarts', 'V9', progress=False)
    with pytest.raises(ValueError, match="unknown route 'C3'"): run_search('icdarts', scale='ci', progress=False, extension=dict(route='C3'))
    with pytest.raises(ValueError, match='eval_C must be even'): run_search('icdarts', scale='ci', progress=False, extension=dict(eval_C=3))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['temp'\]"): run_search('icdarts', scale='ci', progress=False, extension=dict(temp=1))
    with pytest.raises(ValueError, match="zero configuration 'V2' searches with random"):
        run_search('icdarts', 'darts', scale='ci', progress=False, extension=dict(zero='V2'))
    with pytest.raises(ValueError, match="say which of V2, V3, V4"):
        run_search('icdarts', zero_space('darts', 'V3'), scale='ci', progress=False)
    with pytest.raises(ValueError, match="runs 'cdarts' or 'icdarts'"): cyclic_search('darts_1st', 'V1')
    with pytest.raises(ValueError, match="no zero"): zero_space('s2', 'V1')
    with pytest.raises(ValueError, match="network must be"): discretize_zero(parse_genotype('DARTS_V2'), 'V3', 'search')


def test_reference_tables_have_their_schema():
    for name, t in ICDARTS_REFERENCE.items():
        assert all(len(r) == len(t['columns']) for r in t['rows']), name
    t = seed_table('s003_table3_2')
    assert list(t.zero) == list(ZERO_CONFIGS) and float(t.loc[t.zero == 'V1', 'seed_icdarts'].iloc[0]) == 97.10
    with pytest.raises(ValueError, match='unknown seed-003 table'): seed_table('table9')


def test_seed_table_is_the_frame_it_was():
    "`seed_table` (now `reference.table_frame`) returns the frame the former inline code built: first column unprefixed."
    import pandas as pd
    want = pd.DataFrame([('V0', 96.78, 0.39, 97.17, 0.21, 96.99, 0.16), ('V1', 96.57, 0.32, 97.01, 0.24, 97.10, 0.19),
                         ('V2', 96.52, 0.37, 96.97, 0.27, 96.92, 0.15), ('V3', 96.58, 0.31, 96.96, 0.28, 96.93, 0.14),
                         ('V4', 96.58, 0.31, 23.68, 29.71, 90.00, 12.72)],
                        columns=['zero', 'seed_random', 'seed_random_std', 'seed_cdarts', 'seed_cdarts_std', 'seed_icdarts', 'seed_icdarts_std'])
    pd.testing.assert_frame_equal(seed_table('s003_table3_2'), want, check_exact=True)
    pd.testing.assert_frame_equal(seed_table('s003_table3_2', prefix='x:'), want.rename(columns=lambda c: c.replace('seed_', 'x:')))
    with pytest.raises(ValueError, match=r"^unknown seed-003 table 'nope'; expected one of s003_table3_2, s003_table3_3, s003_table3_6"):
        seed_table('nope')
