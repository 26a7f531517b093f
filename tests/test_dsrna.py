"""DSRNA (thesis ch. 1): the Jacobian-norm metric against exact differentiation, gradients of the three metrics reaching
α, the search methods of the driver (γ = 0 is the plain step; γ > 0 moves α towards larger R), and clear errors."""
import math
from dataclasses import replace
import pytest
import torch
from trustnas_nb.dsrna import (jacobian_norm, jacobian_frobenius_sq, jacobian_metric, exact_jacobian, dual_norm,
                               margin_lower_bound, cb_metric, adapt_eps, RobustTerm)
from trustnas_nb.supernet import build_supernet
from trustnas_nb.search import run_search, METHODS, get_method

pytestmark = pytest.mark.usefixtures('one_thread')

@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0)
    n = build_supernet('darts', C=4, num_classes=10, layers=3, in_channels=3, pc_k=2, edge_norm=True)
    n.train(); n(torch.rand(16, 3, 8, 8))           # running statistics for the bound engine
    return n.eval()

@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 8, 8, generator=g), torch.tensor([0, 3, 7, 9])

@pytest.fixture(scope='module')
def mlp():
    "A small MLP: the statistical tests draw thousands of projections, cheap here."
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).eval()

def _out(net, x):
    xr = x.clone().requires_grad_(True)
    return net(xr), xr

@pytest.mark.parametrize('norm', ['linf', 'l2'])
def test_all_projections_is_exact(net, batch, norm):
    x, _ = batch
    J = exact_jacobian(net, x)
    out, xr = _out(net, x)
    exact = torch.linalg.vector_norm(J, ord=dual_norm(norm), dim=2).sum(1)
    torch.testing.assert_close(jacobian_norm(out, xr, norm, n_proj=10), exact, rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(jacobian_norm(out, xr, norm, n_proj=50), exact, rtol=1e-4, atol=1e-9)   # P > K: all rows

def test_exact_jacobian_matches_autograd(net, batch):
    x, _ = batch
    J = exact_jacobian(net, x[:1])
    Jf = torch.autograd.functional.jacobian(lambda z: net(z).squeeze(0), x[:1]).flatten(1)
    torch.testing.assert_close(J[0], Jf, rtol=1e-4, atol=1e-7)

def test_estimate_unbiased_and_converges(mlp):
    net, x = mlp, torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    J = exact_jacobian(net, x)
    exact = torch.linalg.vector_norm(J, ord=1, dim=2).sum(1)
    out, xr = _out(net, x)
    g = torch.Generator().manual_seed(0)
    errs = {}
    for P in (1, 3, 7):
        d = torch.stack([jacobian_norm(out, xr, 'linf', P, g, create_graph=False) for _ in range(2000)])
        se = d.std(0) / math.sqrt(len(d))
        assert ((d.mean(0) - exact).abs() <= 4 * se + 1e-7).all(), (P, d.mean(0), exact)    # unbiased
        errs[P] = ((d - exact).abs() / exact).mean().item()
    assert errs[1] > errs[3] > errs[7], errs                                                 # converges as P grows

def test_frobenius_estimate_unbiased(mlp):
    net, x = mlp, torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(2))
    fro = exact_jacobian(net, x).pow(2).sum((1, 2))
    out, xr = _out(net, x)
    g = torch.Generator().manual_seed(0)
    d = torch.stack([jacobian_frobenius_sq(out, xr, 1, g, create_graph=False) for _ in range(2000)])
    assert ((d.mean(0) - fro).abs() <= 4 * d.std(0) / math.sqrt(len(d))).all()

def test_metric_definition(net, batch):
    x, _ = batch
    out, xr = _out(net, x)
    R = jacobian_metric(out, xr, 0.3, 'linf', n_proj=10)
    exact = torch.linalg.vector_norm(exact_jacobian(net, x), ord=1, dim=2).sum(1)
    torch.testing.assert_close(R, -0.3 * exact.mean() / 10, rtol=1e-4, atol=1e-9)

@pytest.mark.parametrize('kind', ['jacobian', 'cb', 'combined'])
def test_gradients_reach_alpha(net, batch, kind):
    x, y = batch
    term = RobustTerm(kind, net, gamma=0.01, dataset='objects10', cb_batch=4)
    net.zero_grad()
    xr = x.clone().requires_grad_(kind != 'cb')
    R = term(net(xr), xr, y)
    assert R.requires_grad and math.isfinite(R.item())
    gs = torch.autograd.grad(R, net.arch_parameters(), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in gs), kind
    assert all(g is None or torch.isfinite(g).all() for g in gs)

def test_cb_metric_is_certified_margin(net, batch):
    x, y = batch
    m0 = margin_lower_bound(net, x, y, 0.0, 'linf', 'ibp')
    logits = net(x)
    true = logits.gather(1, y[:, None]).squeeze(1) - logits.scatter(1, y[:, None], -1e9).max(1).values
    torch.testing.assert_close(m0, true, rtol=1e-4, atol=1e-5)       # at eps = 0 the bound is the margin itself
    assert (margin_lower_bound(net, x, y, 0.01) <= m0 + 1e-6).all()
    assert cb_metric(net, x, y, 0.01) < cb_metric(net, x, y, 0.001)

def test_eps_adaptation():
    assert adapt_eps(0.03, 1.0, 0.003, 0.003, 0.3) == pytest.approx(0.033)
    assert adapt_eps(0.03, -1.0, 0.003, 0.003, 0.3) == pytest.approx(0.027)
    assert adapt_eps(0.3, 1.0, 0.003, 0.003, 0.3) == 0.3 and adapt_eps(0.003, -1.0, 0.003, 0.003, 0.3) == 0.003
    assert adapt_eps(0.1, float('inf'), 0.003, 0.003, 0.3) == 0.003

def test_methods_registered():
    for name, kind in (('dsrna_cb', 'cb'), ('dsrna_jacobian', 'jacobian'), ('dsrna_combined', 'combined')):
        m = get_method(name)
        assert m.robust == kind and m.partial_channels and m.hypergradient == 'first_order'

def _alphas(r): return torch.cat([w.flatten() for w in r.alphas.values()])

def test_gamma_zero_is_plain_pcdarts_step():
    # ci presets: DSRNA-CB's optimizer settings equal PC-DARTS' except α weight decay, which the override aligns
    a = run_search('dsrna_cb', 'darts', scale='ci', seed=3, progress=False, robust=dict(gamma=0.0))
    b = run_search('pcdarts', 'darts', scale='ci', seed=3, progress=False, a_wd=3e-4)
    torch.testing.assert_close(_alphas(a), _alphas(b), rtol=0, atol=0)
    assert a.genotype == b.genotype and a.history[-1]['train_loss'] == b.history[-1]['train_loss']
    c = run_search('dsrna_cb', 'darts', scale='ci', seed=3, progress=False)
    assert not torch.equal(_alphas(a), _alphas(c))                   # and γ > 0 changes the search

@pytest.mark.parametrize('kind', ['jacobian', 'cb'])
def test_positive_gamma_raises_R(net, batch, kind):
    "One Adam step on L_val − γR from the same state: with large γ, R at the new α exceeds R after the γ = 0 step."
    import copy
    import torch.nn.functional as F
    x, y = batch
    res = {}
    for gamma in (0.0, 100.0):
        n = copy.deepcopy(net)
        term = RobustTerm(kind, n, gamma=gamma, dataset='objects10', n_proj=10, cb_batch=4, eps0=0.003, eps_min=0.003)
        opt = torch.optim.Adam(n.arch_parameters(), lr=0.05)
        xr = x.clone().requires_grad_(kind == 'jacobian')
        out = n(xr)
        loss = F.cross_entropy(out, y) - (gamma * term(out, xr, y) if gamma else 0.0)
        opt.zero_grad(); loss.backward(); opt.step()
        probe = RobustTerm(kind, n, gamma=1.0, dataset='objects10', n_proj=10, cb_batch=4, eps0=0.003, eps_min=0.003)
        xr = x.clone().requires_grad_(kind == 'jacobian')
        res[gamma] = probe(n(xr), xr, y).item()
    assert res[100.0] > res[0.0], res

def test_bad_input():
    with pytest.raises(ValueError, match='gamma = -0.1'):
        run_search('dsrna_jacobian', scale='ci', progress=False, robust=dict(gamma=-0.1))
    with pytest.raises(ValueError, match="unknown attack norm 'l7'"):
        run_search('dsrna_cb', scale='ci', progress=False, robust=dict(norm='l7'))
    with pytest.raises(KeyError, match='unknown preset field'):
        run_search('dsrna_cb', scale='ci', progress=False, robust=dict(gama=0.1))
    with pytest.raises(ValueError, match='DSRNA methods only'):
        run_search('pcdarts', scale='ci', progress=False, robust=dict(gamma=0.1))
    with pytest.raises(ValueError, match='first-order'):
        run_search(replace(METHODS['dsrna_cb'], hypergradient='finite_difference'), scale='ci', progress=False)
    with pytest.raises(ValueError, match='unknown robustness metric'):
        RobustTerm('lipschitz', None)
    with pytest.raises(ValueError, match="cb_method = 'cnn-cert'"):
        run_search('dsrna_cb', scale='ci', progress=False, robust=dict(cb_method='cnn-cert'))
    with pytest.raises(ValueError, match='eps_min'):
        RobustTerm('cb', None, eps0=0.5, eps_max=0.3)
    x = torch.rand(2, 3); out = x @ torch.ones(3, 4)
    with pytest.raises(ValueError, match='requires_grad_'):
        jacobian_norm(out, x)
    xr = x.clone().requires_grad_(); out = xr @ torch.ones(3, 4)
    with pytest.raises(ValueError, match='n_proj = 0'):
        jacobian_norm(out, xr, n_proj=0)
    with pytest.raises(ValueError, match='delta = -1'):
        jacobian_metric(out, xr, -1)

def test_genotype_weights_select_one_path():
    "With a genotype's weights, the supernet's output does not depend on the weights of any operation off the path."
    from trustnas_nb.dsrna import genotype_weights
    from trustnas_nb.search import random_genotype
    torch.manual_seed(0)
    sn = build_supernet('darts', C=4, num_classes=10, layers=3, in_channels=1).eval()
    g = random_genotype(sn.space, 1)
    W = genotype_weights(sn, g)
    assert all(int((w.sum(1) > 0).sum()) == 2 * sn.space.n_nodes and set(w.sum(1).tolist()) <= {0.0, 1.0} for w in W.values())
    x = torch.rand(2, 1, 8, 8)
    y0 = sn(x, W)
    cell, kind = sn.cells[0], 'reduce' if sn.cells[0].reduction else 'normal'
    n_changed = 0
    with torch.no_grad():                                              # perturb every parameterized op off the path
        for e, o in (W[kind] == 0).nonzero().tolist():
            for p in list(cell.edges[e].ops.values())[o].parameters(): p.add_(1.0); n_changed += 1
    assert n_changed > 0
    torch.testing.assert_close(sn(x, W), y0)
    with pytest.raises(ValueError, match='not in space'):
        from trustnas_nb.genotypes import Genotype
        genotype_weights(build_supernet('s2', C=4, num_classes=10, layers=3, in_channels=1), g)

def test_robnet_search_ci():
    r = run_search('robnet', 'darts', scale='ci', seed=0, progress=False)
    h = r.history_frame()
    assert r.method == 'robnet' and (h.phase == 'ranking').sum() >= 2
    assert h.pgd_acc.dropna().between(0, 1).all()
    assert r.genotype_str == h[h.phase == 'ranking'].sort_values('pgd_acc', ascending=False, kind='stable').genotype.iloc[0]
