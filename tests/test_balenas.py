"BaLeNAS (seed 004 ch.5): VAdam against hand computations, reproducible posterior sampling, the σ → 0 limit, bad options."
import math
import numpy as np
import pytest
import torch
from trustnas_nb.balenas import (VAdam, check_balenas_options, depth_edges, depth_l0, cell_depth, count_skips, balenas_search,
                                 posterior, sample_genotypes, seed_table, BaLeNASExtension)
from trustnas_nb.genotypes import get_genotype, parse_genotype
from trustnas_nb.ops import get_space
from trustnas_nb.search import run_search

# f(θ) = ½ a θ² − b θ per coordinate: ∇f(θ) = aθ − b
A, B = np.array([2.0, 0.5, 1.0]), np.array([1.0, -1.0, 0.0])
MU0 = np.array([0.3, -0.2, 1.5])

def _run_vadam(form, steps, N=50.0, dt=0.1, lr=0.05, gam=0.5, rho=0.2, eps_seq=None):
    p = torch.nn.Parameter(torch.tensor(MU0, dtype=torch.float64))
    opt = VAdam([p], lr=lr, N=N, delta_tilde=dt, momentum=gam, s_rate=rho, form=form, eps=0.0)
    for t in range(steps):
        th = p.detach() + opt.sigma(p) * torch.tensor(eps_seq[t])
        p.grad = torch.tensor(A) * th - torch.tensor(B)
        opt.step()
    return p.detach().numpy(), opt.sigma(p).numpy()

def _hand(form, steps, N=50.0, dt=0.1, lr=0.05, gam=0.5, rho=0.2, eps_seq=None):
    mu, prev, s, m = MU0.copy(), MU0.copy(), np.zeros(3), np.zeros(3)
    for t in range(1, steps + 1):
        sig = 1 / np.sqrt(N * (s + dt))                           # σ_t² = 1/[N(s_t + δ̃)]
        g = A * (mu + sig * eps_seq[t - 1]) - B                   # ĝ(θ_t), θ_t = μ_t + σ_t ε
        if form == 'eq5.16':
            s_new = (1 - rho) * s + rho * g * g                   # eq. 5.17
            mu_new = mu - lr * (g + dt * mu) / (s_new + dt) + gam * (s + dt) / (s_new + dt) * (mu - prev)   # eq. 5.16
            prev, mu, s = mu, mu_new, s_new
        else:                                                     # Khan et al.'s VAdam
            m = gam * m + (1 - gam) * (g + dt * mu)
            s = (1 - rho) * s + rho * g * g
            mu = mu - lr * (m / (1 - gam ** t)) / (np.sqrt(s / (1 - (1 - rho) ** t)) + dt)
    return mu, 1 / np.sqrt(N * (s + dt))

@pytest.mark.parametrize('form', ['eq5.16', 'vadam'])
def test_vadam_matches_hand_computation_on_quadratic(form):
    eps_seq = np.random.default_rng(3).standard_normal((4, 3))
    mu, sig = _run_vadam(form, 4, eps_seq=eps_seq)
    mu_h, sig_h = _hand(form, 4, eps_seq=eps_seq)
    np.testing.assert_allclose(mu, mu_h, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sig, sig_h, rtol=1e-10)
    assert not np.allclose(mu, MU0) and np.all(sig < 1 / np.sqrt(50 * 0.1))      # it moved; σ shrank from 1/√(Nδ̃)

def test_vadam_posterior_concentrates_on_minimiser():
    # deterministic limit on a quadratic: μ → the minimiser of f + ½δ̃μ² (the MAP under the prior)
    p = torch.nn.Parameter(torch.tensor(MU0))
    opt = VAdam([p], lr=0.05, N=float('inf'), delta_tilde=0.5, form='eq5.16', s_rate=0.1)
    for _ in range(400):
        p.grad = torch.tensor(A, dtype=p.dtype) * p.detach() - torch.tensor(B, dtype=p.dtype); opt.step()
    np.testing.assert_allclose(p.detach().numpy(), B / (A + 0.5), atol=1e-4)
    assert torch.all(opt.sigma(p) == 0)

def test_vadam_infinite_N_is_adam():
    torch.manual_seed(0)
    x0 = torch.randn(5, 4)
    p1, p2 = torch.nn.Parameter(x0.clone()), torch.nn.Parameter(x0.clone())
    o1 = VAdam([p1], lr=3e-2, N=float('inf'), delta_tilde=0.0, momentum=0.5, s_rate=1e-3, eps=1e-8)
    o2 = torch.optim.Adam([p2], lr=3e-2, betas=(0.5, 0.999), eps=1e-8)
    W = torch.randn(4, 4)
    for _ in range(20):
        for p, o in ((p1, o1), (p2, o2)):
            o.zero_grad(); ((p @ W).sin().sum() + (p ** 2).sum()).backward(); o.step()
    torch.testing.assert_close(p1.detach(), p2.detach(), rtol=1e-5, atol=1e-6)

def test_balenas_with_zero_variance_is_first_order_darts():
    "σ = 0 (N = ∞), δ̃ = a_wd = 0, no depth term: BaLeNAS is DARTS (1st) with Adam, to the last α."
    r0 = balenas_search('darts', scale='ci', seed=1, extension=dict(N=float('inf'), depth_eta=0.0), a_wd=0.0)
    rd = run_search('darts_1st', 'darts', scale='ci', seed=1, progress=False, a_wd=0.0)
    assert r0.genotype == rd.genotype
    for k in rd.alphas: torch.testing.assert_close(r0.alphas[k], rd.alphas[k], rtol=1e-5, atol=1e-6)
    mu = posterior(r0)['mu']
    assert all(torch.all(s == 0) for s in posterior(r0)['sigma'].values())
    # and with a posterior of finite width the search differs (the noise reaches the α gradient)
    r1 = balenas_search('darts', scale='ci', seed=1, extension=dict(depth_eta=0.0), a_wd=1e-3)
    assert any(not torch.allclose(posterior(r1)['mu'][k], mu[k]) for k in mu)

def test_sampling_is_reproducible_and_seed_dependent():
    a = balenas_search('nb201', scale='ci', seed=0, extension=dict(M=2))
    b = balenas_search('nb201', scale='ci', seed=0, extension=dict(M=2))
    c = balenas_search('nb201', scale='ci', seed=5, extension=dict(M=2))
    pa, pb, pc = posterior(a), posterior(b), posterior(c)
    for k in pa['mu']:
        assert torch.equal(pa['mu'][k], pb['mu'][k]) and torch.equal(pa['sigma'][k], pb['sigma'][k])
    assert any(not torch.equal(pa['mu'][k], pc['mu'][k]) for k in pa['mu'])
    g1, g2, g3 = sample_genotypes(a, 6, seed=0), sample_genotypes(a, 6, seed=0), sample_genotypes(a, 6, seed=1)
    assert g1 == g2 and g1 != g3
    assert a.history[-1]['sigma_mean'] > 0 and 'n_skip' in a.history[-1] and 'depth' in a.history[-1]

def test_mc_gradient_is_mean_over_samples():
    "a_loss averages the upper loss over the M samples θ_i = μ + σ ε_i (checked on a linear 'loss' in α)."
    from types import SimpleNamespace
    from trustnas_nb.supernet import build_supernet
    from trustnas_nb.search import METHODS
    from trustnas_nb.core import Preset
    sp = get_space('darts', 2)
    net = build_supernet(sp, C=4, num_classes=3, layers=3, in_channels=1)
    ctx = SimpleNamespace(net=net, space=sp, P={'n_val': 10}, seed=0)
    ext = BaLeNASExtension(METHODS['balenas'], ctx, Preset(dict(M=3, N=4.0, depth_eta=0.0)))
    ext.arch_optimizer(net.arch_parameters(), lr=1e-3, betas=(0.5, 0.999), weight_decay=0.25)
    ext.before_step(0, 0, None, None)
    alpha = dict(net.named_arch_parameters())
    loss = ext.a_loss(lambda Pm, b: sum((v ** 2).sum() for v in Pm['alpha'].values()), {'alpha': alpha}, None)
    loss.backward()
    for n, p in alpha.items():
        expect = sum(2 * (p.detach() + ext.eps[i][n]) for i in range(3)) / 3
        torch.testing.assert_close(p.grad, expect)
        torch.testing.assert_close(ext.opt.sigma(p), torch.full_like(p, 1.0))      # 1/√(N δ̃) = 1/√(4 · 0.25)

def test_depth_term_and_cell_metrics():
    sp = get_space('darts')
    assert depth_edges(sp) == [(4, 0), (8, 0), (13, 0)]          # edges 2→3, 3→4, 4→5
    a = torch.zeros(sp.n_edges, 8, requires_grad=True)
    d = depth_l0(a, depth_edges(sp))
    assert float(d.detach()) == pytest.approx(-3 / (1 + math.exp(-(2 / 3) * math.log(1.1 / 0.1))))
    d.backward()
    assert torch.all(a.grad[[4, 8, 13], 0] > 0) and a.grad.abs().sum() == a.grad[[4, 8, 13], 0].sum()
    g = get_genotype('DARTS_V2')
    assert cell_depth(g) == 2 and count_skips(g) == 2
    assert cell_depth(parse_genotype('|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|')) == 3

def test_depth_regularization_deepens_in_darts_space():
    "η₁ > 0 lowers the zero logit on the depth edges relative to the run without it (same seed, same noise)."
    kw = dict(scale='ci', seed=0, max_steps=2)
    r1 = balenas_search('darts', extension=dict(depth_eta=5.0), **kw)
    r0 = balenas_search('darts', extension=dict(depth_eta=0.0), **kw)
    e = [i for i, _ in depth_edges(get_space('darts', 2))]
    z1, z0 = posterior(r1)['mu']['alpha_normal'][e, 0], posterior(r0)['mu']['alpha_normal'][e, 0]
    assert torch.all(z1 < z0)
    assert 'depth_l0' in r1.history[-1] and 'depth_l0' not in r0.history[-1]

@pytest.mark.parametrize('bad,word', [(dict(M=0), 'M'), (dict(M=1.5), 'M'), (dict(form='adam'), 'form'), (dict(N=-1.0), 'N'),
                                      (dict(N=float('nan')), 'N'), (dict(delta_tilde=-1e-3), 'delta_tilde'),
                                      (dict(s_rate=0.0), 's_rate'), (dict(momentum=1.0), 'momentum'), (dict(depth_eta=-0.1), 'depth_eta'),
                                      (dict(depth_limits=(0.1, 1.1)), 'depth_limits'), (dict(sample_w='yes'), 'sample_w'),
                                      (dict(colour=1), 'colour')])
def test_bad_options_rejected(bad, word):
    with pytest.raises(ValueError, match=word): check_balenas_options(bad)

def test_bad_run_inputs_rejected():
    with pytest.raises(ValueError, match='unknown option'): balenas_search('darts', scale='ci', extension=dict(bogus=1))
    with pytest.raises(ValueError, match='zero'): balenas_search('s2', scale='ci', extension=dict(depth_eta=0.1))
    with pytest.raises(ValueError, match='not a BaLeNAS method'): balenas_search('darts', method='darts_1st')
    with pytest.raises(ValueError, match='σ²'): VAdam([torch.nn.Parameter(torch.zeros(2))], N=10.0, delta_tilde=0.0)
    with pytest.raises(ValueError, match='lr'): VAdam([torch.nn.Parameter(torch.zeros(2))], lr=-1.0)
    with pytest.raises(ValueError, match='unknown seed-004'): seed_table('s004_table9')

def test_seed_tables():
    t = seed_table('s004_table5_1').set_index('method')
    assert t.loc['BaLeNAS', 'seed_cifar10_err'] == 2.43 and t.loc['DARTS (2nd)', 'seed_cifar100_err'] == 17.54
    t2 = seed_table('s004_table5_2').set_index('method')
    assert t2.loc['M = 1', 'seed_c10_test'] == 94.33 and len(t2) == 6


def test_seed_table_is_the_frame_it_was():
    "Table 5.2 through `reference.table_frame`, with its shared rows from `reference`, equals the frame built inline."
    import pandas as pd
    cols = ['method', 'c10_valid', 'c10_valid_std', 'c10_test', 'c10_test_std', 'c100_valid', 'c100_valid_std', 'c100_test',
            'c100_test_std', 'in16_valid', 'in16_valid_std', 'in16_test', 'in16_test_std']
    want = pd.DataFrame([
        ('M = 1', 91.52, 0.09, 94.33, 0.04, 72.67, 0.08, 72.95, 0.27, 45.39, 0.17, 46.32, 0.39),
        ('M = 2', 89.71, 2.12, 92.75, 1.87, 70.25, 2.92, 70.43, 2.45, 31.63, 2.15, 43.15, 2.95),
        ('M = 3', 91.31, 0.25, 94.03, 0.35, 72.08, 1.27, 72.30, 1.09, 45.72, 0.78, 45.58, 0.78),
        ('M = 4', 90.03, 0.96, 93.04, 1.09, 68.80, 1.46, 69.20, 1.86, 43.09, 2.93, 43.21, 2.88),
        ('DARTS (2nd)', 37.51, 3.19, 53.89, 0.58, 13.37, 2.35, 13.96, 2.33, 15.06, 1.95, 14.84, 2.10),
        ('optimal', 91.61, None, 94.37, None, 74.49, None, 73.51, None, 46.77, None, 47.31, None)],
        columns=['method'] + ['seed_' + c for c in cols[1:]])
    pd.testing.assert_frame_equal(seed_table('s004_table5_2'), want, check_exact=True)
    with pytest.raises(ValueError, match=r"^unknown seed-004 chapter-5 table 'nope'; expected one of s004_table5_1, s004_table5_2$"):
        seed_table('nope')
