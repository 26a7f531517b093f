"Tests of the multilevel-optimization engine (trustnas_nb.mlo), on tiny float64 problems."
import math
import pytest
import torch
from torch import nn

from trustnas_nb.mlo import Level, MLOProblem, hypergradient, call, functional, METHODS

torch.set_num_threads(1)
DT = torch.float64


def rel(a, b):
    return float((a - b).norm() / b.norm())


def chain(n, ascent=(), wd=0.0, seed=0, d=3, xi=0.1, every=None, lr=0.1, counts=None):
    """A generic nonlinear chain of `n` levels 'L0'..'L{n-1}', each with one tensor 't' (d values).

    Level k's loss couples its parameters with those of *every* other level through tanh/sin terms (so nothing is
    quadratic and finite differences are not exact); an ascent level has a concave own term."""
    g = torch.Generator().manual_seed(seed)
    th = [(0.5 * torch.randn(d, generator=g, dtype=DT)).requires_grad_() for _ in range(n)]
    M = {(k, j): 0.7 * torch.randn(d, d, generator=g, dtype=DT) for k in range(n) for j in range(n) if j != k}

    def make(k):
        s = -1.0 if k in ascent else 1.0

        def L(P, b):
            if counts is not None: counts[k] = counts.get(k, 0) + 1
            t = P[f'L{k}']['t']
            v = s * (0.75 * (t ** 2).sum() + 0.1 * torch.log(torch.cosh(t)).sum())
            for j in range(n):
                if j != k: v = v + 0.5 * (torch.tanh(M[k, j] @ P[f'L{j}']['t']) * torch.sin(t)).sum()
            return v
        return L
    every = every or [1] * n
    return [Level(f'L{k}', {'t': th[k]}, make(k), optimizer=torch.optim.SGD([th[k]], lr=lr), lr_unroll=xi,
                  weight_decay_unroll=wd, maximize=k in ascent, every=every[k]) for k in range(n)]


CHAINS = {'2-level': dict(n=2), '3-level': dict(n=3, wd=0.01), '4-level+ascent': dict(n=4, ascent=(1,), wd=0.01),
          '4-level ascent top-1': dict(n=4, ascent=(2,), seed=3)}


# ---------------------------------------------------------------------------------------------- hypergradient methods
@pytest.mark.parametrize('name', list(CHAINS))
def test_finite_difference_matches_exact(name):
    ch = chain(**CHAINS[name])
    for lv in ch[1:]:
        ex = hypergradient(ch, lv.name, method='exact')['t']
        fd = hypergradient(ch, lv.name, method='finite_difference')['t']   # default fd_eps = 0.01
        fo = hypergradient(ch, lv.name, method='first_order')['t']
        assert rel(fd, ex) < 1e-4, (name, lv.name, rel(fd, ex))
        assert rel(fo, ex) > 1e-3, 'the chain must make the unroll matter, else the comparison proves nothing'


def test_finite_difference_is_not_exact_for_nonquadratic_losses():
    # sanity of the test problem: with a large step the central difference visibly deviates (truncation O(eps^2))
    ch = chain(4, ascent=(1,), wd=0.01)
    ex = hypergradient(ch, 'L3', method='exact')['t']
    assert rel(hypergradient(ch, 'L3', fd_eps=0.5)['t'], ex) > 1e-5


@pytest.mark.parametrize('name', list(CHAINS))
def test_neumann_k0_equals_exact_unroll(name):
    ch = chain(**CHAINS[name])
    for lv in ch[1:]:
        ex = hypergradient(ch, lv.name, method='exact')['t']
        nk = hypergradient(ch, lv.name, method='neumann', neumann_steps=0)['t']
        assert rel(nk, ex) < 1e-12, (name, lv.name)
    assert rel(hypergradient(ch, ch[-1].name, method='neumann', neumann_steps=3)['t'],
               hypergradient(ch, ch[-1].name, method='exact')['t']) > 1e-6   # K > 0 is a different estimate


@pytest.mark.parametrize('maximize', [False, True])
def test_neumann_large_k_approaches_implicit_hypergradient(maximize):
    # lower: (+/-)(0.5 w'Hw - w'B a) -> w*(a) = H^-1 B a (a min, or a max for the ascent level); upper nonlinear in w, a
    g = torch.Generator().manual_seed(1)
    d, m = 5, 4
    Q = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DT))[0]
    H = Q @ torch.diag(torch.linspace(1.0, 3.0, d, dtype=DT)) @ Q.T
    B = torch.randn(d, m, generator=g, dtype=DT)
    X, y = torch.randn(7, d, generator=g, dtype=DT), torch.randn(7, generator=g, dtype=DT)
    a = torch.randn(m, generator=g, dtype=DT).requires_grad_()
    w = torch.linalg.solve(H, B @ a.detach()).requires_grad_()          # at the lower optimum
    s = -1.0 if maximize else 1.0
    lo = lambda P, b: s * (0.5 * P['w']['w'] @ H @ P['w']['w'] - P['w']['w'] @ B @ P['a']['a'])
    up = lambda P, b: ((torch.tanh(X @ P['w']['w']) - y) ** 2).mean() + 0.1 * torch.sin(P['a']['a']).sum()
    ch = [Level('w', {'w': w}, lo, lr_unroll=1 / 3.0, maximize=maximize), Level('a', {'a': a}, up, lr_unroll=0.1)]
    # closed form (IFT): dL/da = d_a L + B^T H^-1 d_w L
    wd_, ad_ = w.detach().requires_grad_(), a.detach().requires_grad_()
    gw, ga = torch.autograd.grad(up({'w': {'w': wd_}, 'a': {'a': ad_}}, None), [wd_, ad_])
    ift = ga + B.T @ torch.linalg.solve(H, gw)
    errs = [rel(hypergradient(ch, 'a', method='neumann', neumann_steps=K)['a'], ift) for K in (0, 5, 200)]
    assert errs[2] < 1e-10 and errs[0] > errs[1] > errs[2], errs


def test_first_order_is_partial_derivative_and_ignores_lower_level():
    ch = chain(2)
    fo = hypergradient(ch, 'L1', method='first_order')['t']
    P = {lv.name: lv.named for lv in ch}
    direct = torch.autograd.grad(ch[1].loss(P, None), ch[1].named['t'])[0]
    assert torch.allclose(fo, direct, rtol=0, atol=1e-15)
    # replace the lower loss: first order does not move, the unrolled methods do
    other = Level('L0', ch[0].named, lambda P, b: 5 * (P['L0']['t'] * P['L1']['t'].exp()).sum() ** 2, lr_unroll=0.1)
    ch2 = [other, ch[1]]
    assert torch.equal(hypergradient(ch2, 'L1', method='first_order')['t'], fo)
    assert rel(hypergradient(ch2, 'L1', method='exact')['t'], hypergradient(ch, 'L1', method='exact')['t']) > 1e-3


def test_bottom_level_gets_plain_gradient_for_every_method():
    ch = chain(3)
    P = {lv.name: lv.named for lv in ch}
    direct = torch.autograd.grad(ch[0].loss(P, None), ch[0].named['t'])[0]
    for m in METHODS: assert torch.allclose(hypergradient(ch, 'L0', method=m)['t'], direct, rtol=0, atol=1e-15)


def test_two_level_finite_difference_is_the_darts_formula():
    g = torch.Generator().manual_seed(2)
    Xt, Xv = torch.randn(15, 4, generator=g, dtype=DT), torch.randn(15, 4, generator=g, dtype=DT)
    yt, yv = torch.randn(15, generator=g, dtype=DT), torch.randn(15, generator=g, dtype=DT)
    w, al = torch.randn(4, generator=g, dtype=DT).requires_grad_(), torch.randn(4, generator=g, dtype=DT).requires_grad_()
    Lt = lambda w, a: ((torch.tanh(Xt * a) @ w - yt) ** 2).mean() + 0.1 * torch.cosh(w).sum()
    Lv = lambda w, a: ((torch.tanh(Xv * a) @ w - yv) ** 2).mean()
    ch = [Level('w', {'w': w}, lambda P, b: Lt(P['w']['w'], P['a']['a']), lr_unroll=0.05),
          Level('a', {'a': al}, lambda P, b: Lv(P['w']['w'], P['a']['a']), lr_unroll=1.0)]
    xi = 0.05
    w1 = (w - xi * torch.autograd.grad(Lt(w, al), w)[0]).detach().requires_grad_()
    v, da = torch.autograd.grad(Lv(w1, al), [w1, al])
    eps = 0.01 / v.norm()
    darts = da - xi * (torch.autograd.grad(Lt(w + eps * v, al), al)[0] - torch.autograd.grad(Lt(w - eps * v, al), al)[0]) / (2 * eps)
    assert torch.allclose(hypergradient(ch, 'a')['a'], darts, rtol=0, atol=1e-13)


def test_finite_difference_cost_is_darts_like():
    # per unrolled level: 1 pass for the virtual step + 2 for the central difference; 1 pass of the target loss
    counts = {}
    ch = chain(3, counts=counts)
    hypergradient(ch, 'L2')
    assert counts == {0: 3, 1: 3, 2: 1}
    counts.clear(); hypergradient(ch, 'L1')
    assert counts == {0: 3, 1: 1}
    counts.clear(); hypergradient(ch, 'L2', method='first_order')
    assert counts == {2: 1}


def test_module_level_with_functional_call():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)).double()
    gate = torch.zeros(3, dtype=DT, requires_grad=True)                     # an "architecture" scaling the inputs
    X, Xv = torch.randn(16, 3, dtype=DT), torch.randn(16, 3, dtype=DT)
    y, yv = torch.randn(16, 1, dtype=DT), torch.randn(16, 1, dtype=DT)
    f = functional(net)
    lo = lambda P, b: ((f(P['net'], b[0] * torch.sigmoid(P['gate']['gate'])) - b[1]) ** 2).mean()
    up = lambda P, b: ((call(net, P['net'], b[0] * torch.sigmoid(P['gate']['gate'])) - b[1]) ** 2).mean()
    ch = [Level('net', net, lo, torch.optim.SGD(net.parameters(), lr=0.2)), Level('gate', {'gate': gate}, up, lr_unroll=0.1)]
    bs = {'net': (X, y), 'gate': (Xv, yv)}
    ex = hypergradient(ch, 'gate', bs, method='exact')['gate']
    fd = hypergradient(ch, 'gate', bs)['gate']
    assert rel(fd, ex) < 1e-4
    assert list(hypergradient(ch, 'net', bs)) == [n for n, _ in net.named_parameters()]


# ---------------------------------------------------------------------------------------------- steps
def test_update_frequencies_exact():
    ch = chain(4, ascent=(1,), every=[1, 3, 3, 5])
    prob = MLOProblem(ch)
    changed = {lv.name: [] for lv in ch}
    for t in range(13):
        assert prob.due() == [lv.name for lv in ch if t % lv.every == 0]
        before = {lv.name: lv.named['t'].detach().clone() for lv in ch}
        info = prob.step()
        assert info['step'] == t
        for lv in ch:
            if not torch.equal(before[lv.name], lv.named['t']): changed[lv.name].append(t)
        assert sorted(info['updated']) == sorted(n for n in changed if changed[n] and changed[n][-1] == t)
    assert changed == {'L0': list(range(13)), 'L1': [0, 3, 6, 9, 12], 'L2': [0, 3, 6, 9, 12], 'L3': [0, 5, 10]}
    assert prob.step_count == 13


def test_ascent_bottom_level_increases_its_loss():
    ch = chain(2, ascent=(0,), every=[1, 2])
    prob = MLOProblem(ch)
    prob.step()                                                  # step 0: both move
    P = {lv.name: lv.named for lv in ch}
    before = float(ch[0].loss(P, None).detach())
    assert prob.step()['updated'] == ['L0']                      # step 1: only the ascent level
    assert float(ch[0].loss(P, None).detach()) > before + 1e-4


def test_ascent_middle_level_increases_its_unrolled_objective():
    ch = chain(3, ascent=(1,), every=[2, 1, 2], lr=0.05)
    prob = MLOProblem(ch, method='exact')
    prob.step()

    def F():   # L1 at the one-step unrolled L0, as a function of the current parameters
        P = {lv.name: lv.named for lv in ch}
        t0 = ch[0].named['t']
        g0 = torch.autograd.grad(ch[0].loss(P, None), t0)[0]
        return float(ch[1].loss({**P, 'L0': {'t': t0 - 0.1 * g0}}, None).detach())
    before = F()
    assert prob.step()['updated'] == ['L1']
    assert F() > before + 1e-5


@pytest.mark.parametrize('maximize', [False, True])
def test_optimizer_step_uses_hypergradient(maximize):
    ch = chain(3, ascent=(2,) if maximize else (), lr=0.1)
    prob = MLOProblem(ch, method='finite_difference')
    g = prob.hypergradient('L2')['t']
    t0 = ch[2].named['t'].detach().clone()
    prob.step()                                                  # top-down: L2 is updated first, at the same state
    expected = t0 + 0.1 * g if maximize else t0 - 0.1 * g
    assert torch.allclose(ch[2].named['t'].detach(), expected, rtol=0, atol=1e-14)


def test_bottom_up_order_updates_lower_level_first():
    ch, ref = chain(2, seed=5), chain(2, seed=5)
    MLOProblem(ch, method='exact', order='bottom_up').step()
    P = {lv.name: lv.named for lv in ref}                        # by hand: SGD on L0, then the hypergradient of L1
    g0 = torch.autograd.grad(ref[0].loss(P, None), ref[0].named['t'])[0]
    with torch.no_grad(): ref[0].named['t'].sub_(0.1 * g0)
    g1 = hypergradient(ref, 'L1', method='exact')['t']
    with torch.no_grad(): ref[1].named['t'].sub_(0.1 * g1)
    for a, b in zip(ch, ref): assert torch.allclose(a.named['t'], b.named['t'], rtol=0, atol=1e-14)


def test_grad_clip_limits_step():
    ch = chain(2, lr=1.0)
    ch[1].grad_clip = 1e-3
    g = hypergradient(ch, 'L1')['t']
    assert g.norm() > 1e-2
    t0 = ch[1].named['t'].detach().clone()
    MLOProblem(ch).step()
    step = ch[1].named['t'].detach() - t0
    assert math.isclose(float(step.norm()), 1e-3, rel_tol=1e-6)
    assert torch.allclose(step / step.norm(), -g / g.norm(), atol=1e-12)


def test_lr_unroll_defaults_to_current_optimizer_lr():
    ch = chain(2)
    ch[0].lr_unroll = None
    a = hypergradient(ch, 'L1')['t']                               # optimizer lr 0.1 == the fixed xi of chain()
    assert torch.allclose(a, hypergradient(chain(2), 'L1')['t'], rtol=0, atol=1e-15)
    for grp in ch[0].optimizer.param_groups: grp['lr'] = 0.3       # e.g. a scheduler moved it
    b = hypergradient(ch, 'L1')['t']
    assert torch.allclose(b, hypergradient(chain(2, xi=0.3), 'L1')['t'], rtol=0, atol=1e-15) and rel(a, b) > 1e-3


def test_data_is_cycled_and_batches_override():
    seen = []
    t = torch.zeros(2, requires_grad=True)
    u = torch.zeros(2, requires_grad=True)

    def lo(P, b): seen.append(('lo', b)); return ((P['lo']['t'] - b) ** 2).sum() + (P['lo']['t'] * P['up']['u']).sum()
    def up(P, b): seen.append(('up', b)); return ((P['lo']['t'] - 1) ** 2).sum()
    prob = MLOProblem([Level('lo', {'t': t}, lo, lambda ps: torch.optim.SGD(ps, lr=0.1), data=[1.0, 2.0]),
                       Level('up', {'u': u}, up, lambda ps: torch.optim.SGD(ps, lr=0.1), every=2, data=iter([10.0, 20.0]))])
    for _ in range(5): prob.step()
    lo_b = [b for n, b in seen if n == 'lo']
    up_b = [b for n, b in seen if n == 'up']
    # one draw per step for 'lo' (1,2,1,2,1); one per due step for 'up' (steps 0,2,4 -> 10,20,10; the
    # one-shot iterator is cached and cycled); each loss call of a step sees that step's batch
    assert up_b == [10.0, 20.0, 10.0]
    steps_lo = [1.0, 2.0, 1.0, 2.0, 1.0]
    assert lo_b == [b for t, b in enumerate(steps_lo) for _ in range(4 if t % 2 == 0 else 1)]
    seen.clear(); prob.step(batches={'lo': 7.0})
    assert {b for n, b in seen} == {7.0}
    with pytest.raises(ValueError, match='unknown level'): prob.step(batches={'nope': 1})
    with pytest.raises(ValueError, match='empty'):
        MLOProblem([Level('x', {'t': torch.zeros(1, requires_grad=True)}, lo, lambda ps: torch.optim.SGD(ps, lr=0.1), data=[])]).step()


def test_on_step_and_state_dict_roundtrip():
    calls = []
    ch = chain(3, every=[1, 2, 3])
    for lv in ch: lv.optimizer = torch.optim.SGD(list(lv.named.values()), lr=0.1, momentum=0.9)
    prob = MLOProblem(ch, on_step=lambda p, info: calls.append((p.step_count, tuple(info['updated']))))
    for _ in range(3): prob.step()
    assert calls == [(1, ('L2', 'L1', 'L0')), (2, ('L0',)), (3, ('L1', 'L0'))]
    sd = prob.state_dict()
    saved = [lv.named['t'].detach().clone() for lv in ch]
    for _ in range(4): prob.step()
    after7 = [lv.named['t'].detach().clone() for lv in ch]
    prob.load_state_dict(sd)
    assert prob.step_count == 3 and all(torch.equal(lv.named['t'], s) for lv, s in zip(ch, saved))
    for _ in range(4): prob.step()
    assert all(torch.allclose(lv.named['t'], s, rtol=0, atol=1e-14) for lv, s in zip(ch, after7))


def test_call_substitutes_and_rejects_unknown_names():
    lin = nn.Linear(2, 1)
    x = torch.ones(3, 2)
    out = call(lin, ({'weight': torch.ones(1, 2)}, {'bias': torch.zeros(1)}), x)
    assert torch.equal(out, torch.full((3, 1), 2.0))
    assert torch.equal(call(lin, {}, x), lin(x))
    with pytest.raises(ValueError, match='not in Linear'): call(lin, {'0.weight': torch.ones(1, 2)}, x)


# ---------------------------------------------------------------------------------------------- errors
def test_clear_errors():
    ch = chain(2)
    with pytest.raises(ValueError, match='unknown hypergradient method'): hypergradient(ch, 'L1', method='second_order')
    with pytest.raises(ValueError, match='unknown hypergradient method'): MLOProblem(ch, method='implicit')
    with pytest.raises(ValueError, match='unknown order'): MLOProblem(ch, order='sideways')
    with pytest.raises(ValueError, match='duplicate level name'):
        MLOProblem([ch[0], Level('L0', {'t': torch.zeros(1, requires_grad=True)}, ch[1].loss)])
    with pytest.raises(ValueError, match='not in the chain'): hypergradient(ch, 'alpha')
    with pytest.raises(ValueError, match='no parameters'): Level('x', [], ch[0].loss)
    with pytest.raises(ValueError, match='no parameters'): Level('x', {}, ch[0].loss)
    with pytest.raises(ValueError, match='no parameters'): Level('x', nn.ReLU(), ch[0].loss)
    with pytest.raises(ValueError, match='requires_grad=True'): Level('x', torch.zeros(2), ch[0].loss)
    with pytest.raises(ValueError, match='one level only'): MLOProblem([ch[0], Level('y', ch[0].named, ch[0].loss)])
    with pytest.raises(ValueError, match='every'): Level('x', torch.zeros(1, requires_grad=True), ch[0].loss, every=0)
    with pytest.raises(ValueError, match='maximize'):
        p = torch.zeros(1, requires_grad=True); Level('x', p, ch[0].loss, torch.optim.SGD([p], lr=0.1, maximize=True))
    with pytest.raises(ValueError, match='exactly the level'):
        p, q = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
        Level('x', p, ch[0].loss, torch.optim.SGD([p, q], lr=0.1))
    bad = [Level('a', {'t': torch.zeros(2, requires_grad=True)}, lambda P, b: P['a']['t'] * 2, lr_unroll=0.1)]
    with pytest.raises(ValueError, match='scalar tensor'): hypergradient(bad, 'a')
    nolr = [Level('a', {'t': torch.zeros(2, requires_grad=True)}, lambda P, b: P['a']['t'].sum() * P['b']['u'].sum()),
            Level('b', {'u': torch.ones(2, requires_grad=True)}, lambda P, b: (P['a']['t'] ** 2).sum())]
    with pytest.raises(ValueError, match='lr_unroll'): hypergradient(nolr, 'b')
    with pytest.raises(ValueError, match='no optimizer'): MLOProblem(nolr).step()

def test_update_hooks_wrap_each_own_update_only():
    "before/after_update run around each due level's own update, not around unroll steps (SDARTS relies on this)."
    import torch
    from trustnas_nb.mlo import Level, MLOProblem
    w = torch.zeros(2, requires_grad=True); a = torch.ones(2, requires_grad=True)
    calls, flag = [], {'on': False}
    def lw(P, b):
        calls.append(('w-loss', flag['on']))
        return ((P['w']['0'] - P['a']['0']) ** 2).sum()
    def la(P, b): return (P['w']['0'] ** 2).sum() + (P['a']['0'] ** 2).sum()
    prob = MLOProblem([Level('w', [w], lw, torch.optim.SGD([w], lr=0.1)), Level('a', [a], la, torch.optim.SGD([a], lr=0.1))],
                      method='finite_difference',
                      before_update=lambda p, n: (flag.__setitem__('on', n == 'w'), calls.append(('before', n))),
                      after_update=lambda p, n: (flag.__setitem__('on', False), calls.append(('after', n))))
    prob.step()
    assert calls[0] == ('before', 'a') and ('after', 'a') in calls and calls[-1] == ('after', 'w')
    i, j = calls.index(('before', 'w')), calls.index(('after', 'w'))
    assert all(c == ('w-loss', False) for c in calls[1:calls.index(('after', 'a'))] if c[0] == 'w-loss')   # unroll: hook off
    assert calls[i + 1:j] == [('w-loss', True)]                                                            # own update: hook on
    import pytest
    with pytest.raises(ValueError, match='before_update must be callable'): MLOProblem(prob.levels, before_update=3)


def test_per_level_method_override():
    "A level's own `method` overrides the problem's for that level only (SANAS: plain updates below, hypergradient on top)."
    ch = chain(4, ascent=(1,), wd=0.01)
    P = {lv.name: lv.named for lv in ch}
    ex_top = hypergradient(ch, 'L3', method='exact')['t']
    for lv in ch[1:3]: lv.method = 'first_order'
    for k in (1, 2):      # the overridden levels get their plain partial gradient, whatever the problem's method
        direct = torch.autograd.grad(ch[k].loss(P, None), ch[k].named['t'])[0]
        for m in METHODS: assert torch.allclose(hypergradient(ch, f'L{k}', method=m)['t'], direct, rtol=0, atol=1e-15)
    # the top level still differentiates through the unrolls of every level below (the override changes no unroll)
    assert torch.allclose(hypergradient(ch, 'L3', method='exact')['t'], ex_top, rtol=0, atol=1e-14)
    assert rel(hypergradient(ch, 'L3', method='finite_difference')['t'], ex_top) < 1e-4
    # a problem step with every level due: the first-order levels ask only for their own batch's loss
    counts = {}
    ch = chain(4, counts=counts)
    for lv in ch[:3]: lv.method = 'first_order'
    prob = MLOProblem(ch, method='finite_difference', order='bottom_up')
    counts.clear(); prob.step()
    assert counts[0] > 1 and counts[2] >= 1      # L3's hypergradient unrolls L0..L2
    with pytest.raises(ValueError, match="unknown hypergradient method 'newton'"):
        Level('x', {'t': torch.zeros(2, requires_grad=True)}, lambda P, b: P['x']['t'].sum(), method='newton')


def test_explicit_update_order():
    "order may list the levels: e.g. the top first (its hypergradient at the start of the step), then bottom-up."
    ch = chain(4)
    seen = []
    prob = MLOProblem(ch, method='first_order', order=('L3', 'L0', 'L1', 'L2'), before_update=lambda p, n: seen.append(n))
    assert prob.step()['updated'] == ['L3', 'L0', 'L1', 'L2'] and seen == ['L3', 'L0', 'L1', 'L2']
    with pytest.raises(ValueError, match='must name every level exactly once'):
        MLOProblem(ch, order=('L3', 'L0'))


def test_plot_levels_draws_one_box_per_level_and_checks_its_notes():
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch
    from trustnas_nb.mlo import plot_levels
    w = torch.zeros(3, requires_grad=True)
    lv = [Level('w', {'w': w}, lambda P, b: (P['w']['w'] ** 2).sum(), torch.optim.SGD([w], lr=0.1)),
          Level('d', {'d': torch.zeros(2, requires_grad=True)}, lambda P, b: (P['d']['d'] ** 2).sum(), maximize=True, every=3),
          Level('a', {'a': torch.zeros(4, requires_grad=True)}, lambda P, b: (P['a']['a'] ** 2).sum())]
    ax = plot_levels(lv, notes={'a': 'validation loss'})
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == 3
    texts = ' | '.join(t.get_text() for t in ax.texts)
    assert "level 'w'" in texts and 'SGD, lr 0.1' in texts and 'maximizes' in texts and 'every 3 steps' in texts
    assert 'validation loss' in texts and texts.count('hypergradient') == 2
    with pytest.raises(ValueError, match=r"notes for unknown level\(s\) \['x'\]"): plot_levels(lv, notes={'x': '?'})
    with pytest.raises(ValueError, match='non-empty sequence of Level'): plot_levels([])
    plt.close('all')
