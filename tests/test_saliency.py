"""Tests of trustnas_nb.saliency: the reweightings of Table 4.4 (values, shapes, gradients, concat's channels), the
adversarial saliency of eq. 4.2 (inside the ball, ascends its loss, deterministic, soft targets need a random start),
AA / IG / SG maps (shapes, non-negative, deterministic under a seed, the model's mode kept, IG completeness),
localisation against masks (hand computations, the mask as a map scores 1, random maps score the mask fraction), the
cascading-randomisation check (matches a hand-written cascade with scipy's Spearman, correlation falls on a trained
model), the plotting helper, and errors that name the bad value."""
import copy
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from torch import nn

from trustnas_nb.saliency import (REWEIGHTINGS, SALIENCY_METHODS, AA_DEFAULTS, LOCALISATION_METRICS, reweight,
                                  reweighted_channels, adversarial_saliency, attribute, saliency_map, localisation,
                                  localisation_table, randomisation_check, show_saliency, eval_mode, logits_of)
from trustnas_nb.datasets import get_dataset


@pytest.fixture(scope='module', autouse=True)
def _single_thread(one_thread):
    "conftest's one thread, set up before this module's model fixtures."
    yield


def small_net(seed=0, in_channels=1, bn=False):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), *([nn.BatchNorm2d(4)] if bn else []), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 10))


@pytest.fixture(scope='module')
def xs():
    return torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def digits():
    kw = dict(canvas_size=24, seed=0)
    return get_dataset('cluttered_digits', 'train', **kw), get_dataset('cluttered_digits', 'test', **kw)


@pytest.fixture(scope='module')
def trained(digits):
    "The notebook's tiny CNN, trained for a few seconds on cluttered digits (about 60% test accuracy)."
    tr, _ = digits
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        for idx in torch.randperm(len(tr.x), generator=g).split(64):
            opt.zero_grad(); F.cross_entropy(model(tr.x[idx]), tr.y[idx]).backward(); opt.step()
    return model.eval()


# --- reweighting (Table 4.4) -------------------------------------------------------------------------------------------

def test_reweight_values_and_shapes():
    x = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    d = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(2)) * 0.06 - 0.03
    expected = {'product': x * d, 'add': x + d, 'abs': x * d.abs(), 'concat': torch.cat([x, d], 1), 'none': x}
    assert set(expected) == set(REWEIGHTINGS)
    for m in REWEIGHTINGS:
        out = reweight(x, d, m)
        torch.testing.assert_close(out, expected[m])
        assert torch.equal(out, reweight(x, d, m))                       # deterministic
        assert out.shape[1] == reweighted_channels(3, m)
        assert out.shape[0] == 2 and out.shape[2:] == x.shape[2:]
    assert reweight(x, d, 'concat').shape == (2, 6, 5, 5) and reweighted_channels(3, 'concat') == 6
    assert reweight(x, d).shape == x.shape                                 # default: eq. 4.3's product


@pytest.mark.parametrize('mechanism', ['product', 'add', 'abs', 'concat'])
def test_reweight_differentiable(mechanism):
    x = (torch.rand(2, 1, 4, 4) + 0.1).requires_grad_(True)
    d = (torch.rand(2, 1, 4, 4) * 0.06 - 0.03).requires_grad_(True)
    gx, gd = torch.autograd.grad(reweight(x, d, mechanism).pow(2).sum(), (x, d))
    assert gx.abs().sum() > 0 and gd.abs().sum() > 0


def test_reweight_errors():
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(ValueError, match="'multiply'"): reweight(x, x, 'multiply')
    with pytest.raises(ValueError, match=r'\(2, 1, 3, 3\)'): reweight(x, torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match='ndarray'): reweight(x, np.zeros((2, 1, 4, 4)))
    with pytest.raises(ValueError, match="'sum'"): reweighted_channels(3, 'sum')
    with pytest.raises(ValueError, match='0'): reweighted_channels(0, 'product')


# --- adversarial saliency (eq. 4.2) -------------------------------------------------------------------------------------

def test_aa_in_ball_and_ascends(xs):
    net = small_net()
    for eps in (0.03, 0.1):
        d = adversarial_saliency(net, xs, eps=eps)
        assert d.shape == xs.shape and not d.requires_grad
        assert d.abs().max() <= eps + 1e-7
        with torch.no_grad():
            y = net(xs).argmax(1)
            l0 = F.cross_entropy(net(xs), y, reduction='none')
            l1 = F.cross_entropy(net(xs + d), y, reduction='none')
        assert (l1 > l0).all(), (l0, l1)                                  # every image's loss goes up
    # PGD's grid: 7 sign steps of a = 2/255 clamped at 0.03 leave |δ| at k·a or 0.03 - k·a (k = 0..7)
    d = adversarial_saliency(net, xs).abs()
    k = torch.arange(8) * 2 / 255
    grid = torch.cat([k, 0.03 - k]).abs()
    assert ((d[..., None] - grid).abs().min(-1).values < 1e-6).all()
    assert AA_DEFAULTS == dict(eps=0.03, steps=7, step_size=2 / 255)


def test_aa_targets_and_determinism(xs):
    net = small_net()
    d = adversarial_saliency(net, xs)
    assert torch.equal(d, adversarial_saliency(net, xs))
    assert torch.equal(d, adversarial_saliency(net, xs, target='hard'))
    with torch.no_grad(): y = net(xs).argmax(1)
    assert torch.equal(d, adversarial_saliency(net, xs, target=y))
    # soft targets: the KL is minimal at δ=0, so its gradient there is round-off; they need a random start
    d0 = torch.zeros_like(xs, requires_grad=True)
    with torch.no_grad(): z = net(xs)
    g_soft, = torch.autograd.grad(F.cross_entropy(net(xs + d0), z.softmax(1), reduction='sum'), d0)
    g_hard, = torch.autograd.grad(F.cross_entropy(net(xs + d0), z.argmax(1), reduction='sum'), d0)
    assert g_soft.abs().max() < 1e-6 * g_hard.abs().max()
    with pytest.raises(ValueError, match='random_start'): adversarial_saliency(net, xs, target='soft')
    r1 = adversarial_saliency(net, xs, target='soft', random_start=True, generator=3)
    r2 = adversarial_saliency(net, xs, target='soft', random_start=True, generator=torch.Generator().manual_seed(3))
    r3 = adversarial_saliency(net, xs, target='soft', random_start=True, generator=4)
    assert torch.equal(r1, r2) and not torch.equal(r1, r3) and r1.abs().max() <= 0.03 + 1e-7
    with torch.no_grad():
        p = net(xs).softmax(1)
        assert F.cross_entropy(net(xs + r1), p) > F.cross_entropy(net(xs), p)
    c = adversarial_saliency(net, xs, clip=(0, 1))
    assert ((xs + c) >= 0).all() and ((xs + c) <= 1).all()


def test_aa_errors(xs):
    net = small_net()
    for eps in (-0.1, 1.5, float('nan'), '0.03'):
        with pytest.raises(ValueError, match='eps'): adversarial_saliency(net, xs, eps=eps)
    with pytest.raises(ValueError, match='-0.1'): adversarial_saliency(net, xs, eps=-0.1)
    with pytest.raises(ValueError, match='steps'): adversarial_saliency(net, xs, steps=0)
    with pytest.raises(ValueError, match='step_size'): adversarial_saliency(net, xs, step_size=0)
    with pytest.raises(ValueError, match="'medium'"): adversarial_saliency(net, xs, target='medium')
    with pytest.raises(ValueError, match='shape'): adversarial_saliency(net, xs, target=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match='generator'): adversarial_saliency(net, xs, random_start=True, generator='x')
    with pytest.raises(ValueError, match='4 dimensions'): adversarial_saliency(net, xs[0])


# --- AA / IG / SG maps (Table 4.5) --------------------------------------------------------------------------------------

@pytest.mark.parametrize('method', SALIENCY_METHODS)
def test_maps_shape_determinism_mode(method, xs):
    net = small_net(bn=True)
    net.train(); net[1].eval()                                           # a mixed mode that must come back as it was
    bn_stats = net[1].running_mean.clone()
    m = saliency_map(net, xs, method=method, seed=0)
    assert m.shape == (4, 1, 8, 8) and (m >= 0).all() and m.sum() > 0 and not m.requires_grad
    assert torch.equal(m, saliency_map(net, xs, method=method, seed=0))
    a = attribute(net, xs, method=method, seed=0)
    assert a.shape == xs.shape
    torch.testing.assert_close(a.abs().sum(1, keepdim=True), m)
    assert net.training and not net[1].training and net[0].training      # modes restored module by module
    assert torch.equal(net[1].running_mean, bn_stats)                    # eval mode: BatchNorm statistics untouched
    assert all(p.grad is None for p in net.parameters())                 # no gradient left on the weights
    # explicit labels are explained, not the prediction
    y = torch.tensor([0, 1, 2, 3])
    assert saliency_map(net, xs, y, method=method).shape == (4, 1, 8, 8)


def test_sg_seed_and_global_rng(xs):
    net = small_net()
    g1 = saliency_map(net, xs, method='sg', seed=torch.Generator().manual_seed(7))
    g2 = saliency_map(net, xs, method='sg', seed=torch.Generator().manual_seed(7))
    assert torch.equal(g1, g2)
    assert not torch.equal(saliency_map(net, xs, method='sg', seed=0), saliency_map(net, xs, method='sg', seed=1))
    torch.manual_seed(123); before = torch.rand(3)
    torch.manual_seed(123); saliency_map(net, xs, method='sg', seed=0); after = torch.rand(3)
    assert torch.equal(before, after)                                    # the caller's random state is untouched


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_multichannel_maps_sum_channels(dtype):
    net = small_net(in_channels=3).to(dtype)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for method in SALIENCY_METHODS:
        a = attribute(net, x, method=method)
        assert a.shape == x.shape and a.dtype == dtype
        torch.testing.assert_close(saliency_map(net, x, method=method), a.abs().sum(1, keepdim=True))


def test_ig_completeness(xs):
    "Sum of IG attributions = f_y(x) - f_y(baseline) for the explained logit (Sundararajan et al.'s completeness)."
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
    y = torch.tensor([3, 1, 4, 1])
    for base in (0.0, 0.5):
        a = attribute(net, xs, y, method='ig', n_steps=64, baseline=base)
        with torch.no_grad():
            gap = net(xs)[range(4), y] - net(torch.full_like(xs, base))[range(4), y]
        torch.testing.assert_close(a.sum((1, 2, 3)), gap, atol=1e-4, rtol=1e-3)
    base = torch.rand(1, 8, 8)
    a = attribute(net, xs, y, method='ig', n_steps=64, baseline=base)
    with torch.no_grad(): gap = net(xs)[range(4), y] - net(base.expand_as(xs))[range(4), y]
    torch.testing.assert_close(a.sum((1, 2, 3)), gap, atol=1e-4, rtol=1e-3)


def test_tuple_output_models(xs):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__(); self.net = small_net()
        def forward(self, x): return self.net(x), None
    m = TwoHeads()
    for method in SALIENCY_METHODS:
        torch.testing.assert_close(saliency_map(m, xs, method=method), saliency_map(m.net, xs, method=method))


def test_map_errors(xs):
    net = small_net()
    with pytest.raises(ValueError, match="'gradcam'"): saliency_map(net, xs, method='gradcam')
    with pytest.raises(ValueError, match='-0.5'): saliency_map(net, xs, method='aa', eps=-0.5)
    with pytest.raises(ValueError, match="'stdevs'"): saliency_map(net, xs, method='ig', stdevs=0.1)
    with pytest.raises(ValueError, match='n_steps'): saliency_map(net, xs, method='ig', n_steps=0)
    with pytest.raises(ValueError, match='stdevs'): saliency_map(net, xs, method='sg', stdevs=-1.0)
    with pytest.raises(ValueError, match=r'\(4,\)'): saliency_map(net, xs, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match='logits'): saliency_map(nn.Identity(), xs)
    with pytest.raises(ValueError, match='nn.Module'):
        with eval_mode(lambda x: x): pass


# --- localisation (Quantus) ---------------------------------------------------------------------------------------------

def _hand_localisation(a, s):
    a, s = a.reshape(len(a), -1).astype(float), s.reshape(len(s), -1).astype(bool)
    pg = np.array([s[i][a[i] == a[i].max()].any() for i in range(len(a))], float)
    mass = (a * s).sum(1) / a.sum(1)
    rank = []
    for i in range(len(a)):
        k = s[i].sum()
        top = np.argsort(-a[i], kind='stable')[:k]
        rank.append(s[i][top].mean())
    return pg, mass, np.array(rank)


def test_localisation_hand_computation():
    a = np.array([[0.9, 0.5, 0.0], [0.1, 0.2, 0.1], [0.0, 0.1, 0.1]])[None, None]
    s = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]], bool)[None, None]
    r = localisation(torch.tensor(a), torch.tensor(s))
    np.testing.assert_allclose([r['pointing_game'][0], r['relevance_mass'][0], r['relevance_rank'][0]], [1, 0.5, 0.5])
    np.testing.assert_allclose(r['mask_fraction_mean'], 2 / 9)
    # on random maps without ties, every image against the hand-written definitions
    rng = np.random.default_rng(0)
    a = rng.random((20, 1, 6, 6)); s = rng.random((20, 1, 6, 6)) < 0.3
    s[:, 0, 0, 0] = True
    r = localisation(a, s)
    for k, hand in zip(LOCALISATION_METRICS, _hand_localisation(a, s)):
        np.testing.assert_allclose(r[k], hand, err_msg=k)
        np.testing.assert_allclose(r[f'{k}_mean'], hand.mean())
    assert r['pointing_game'].shape == (20,)


def test_localisation_mask_as_map_and_chance(digits):
    _, te = digits
    masks = te.mask[:200]
    r = localisation(masks.float(), masks)
    for k in LOCALISATION_METRICS: assert r[f'{k}_mean'] == 1.0, k
    assert (r['pointing_game'] == 1).all() and (r['relevance_mass'] == 1).all()
    rand = torch.rand(masks.shape, generator=torch.Generator().manual_seed(0))
    r = localisation(rand, masks)
    frac = r['mask_fraction_mean']
    assert 0.05 < frac < 0.3
    assert abs(r['relevance_mass_mean'] - frac) < 0.015                  # chance: the share of the canvas covered
    assert abs(r['relevance_rank_mean'] - frac) < 0.03
    assert abs(r['pointing_game_mean'] - frac) < 0.1
    np.testing.assert_allclose(r['relevance_mass'], _hand_localisation(rand.numpy(), masks.numpy())[1])
    t = localisation_table({'mask': masks.float(), 'random': rand}, masks)
    assert list(t.index) == ['mask', 'random'] and t.loc['mask', 'relevance_mass'] == 1.0
    assert list(t.columns) == [*LOCALISATION_METRICS, 'mask_fraction']


def test_localisation_errors():
    a = torch.rand(2, 1, 4, 4); s = torch.zeros(2, 1, 4, 4, dtype=torch.bool); s[:, :, 1, 1] = True
    with pytest.raises(ValueError, match='>= 0'): localisation(a - 1, s)
    with pytest.raises(ValueError, match=r'\(2, 1, 3, 3\)'): localisation(a, s[..., :3, :3])
    s2 = s.clone(); s2[1] = False
    with pytest.raises(ValueError, match=r'\[1\]'): localisation(a, s2)
    with pytest.raises(ValueError, match='shape'): localisation(torch.rand(2, 3, 4, 4), s)
    with pytest.raises(ValueError, match='0/1'): localisation(a, s.float() * 2)
    with pytest.raises(ValueError, match='NaN'): localisation(a * float('nan'), s)
    with pytest.raises(ValueError, match='constant'): localisation(torch.ones(2, 1, 4, 4), s)


# --- cascading randomisation (Fig. 4.2, Quantus MPRT) -------------------------------------------------------------------

def _hand_cascade(model, x, y, method, seed, **kw):
    "Adebayo's cascade by hand: reset layers from the top, Quantus' seeding, scipy Spearman of |maps|."
    orig = saliency_map(model, x, y, method, seed=seed, **kw).flatten(1).numpy()
    m = copy.deepcopy(model)
    layers = [mod for _, mod in m.named_modules() if hasattr(mod, 'reset_parameters')][::-1]
    out = []
    with torch.random.fork_rng():
        for mod in layers:
            torch.manual_seed(seed + 1); mod.reset_parameters()
            a = saliency_map(m, x, y, method, seed=seed, **kw).flatten(1).numpy()
            out.append(np.mean([spearmanr(orig[i], a[i])[0] for i in range(len(x))]))
    return out


def test_randomisation_matches_hand_cascade(trained, digits):
    _, te = digits
    x, y = te.x[:8], te.y[:8]
    before = copy.deepcopy(trained.state_dict())
    df = randomisation_check(trained, x, y, 'aa', steps=2)
    assert list(df.columns) == ['layer', 'label', 'n_randomised', 'spearman', 'spearman_std']
    n_layers = sum(hasattr(m, 'reset_parameters') for m in trained.modules())
    assert len(df) == n_layers + 1 and df['n_randomised'].tolist() == list(range(n_layers + 1))
    assert df['label'].tolist()[:3] == ['original', 'logits', 'logits-1'] and df['layer'].iloc[1] == '10'
    assert df['spearman'].iloc[0] == pytest.approx(1.0)
    np.testing.assert_allclose(df['spearman'].iloc[1:].to_numpy(), _hand_cascade(trained, x, y, 'aa', 0, steps=2),
                               atol=1e-6)
    for k, v in trained.state_dict().items(): assert torch.equal(v, before[k]), k   # the model is untouched
    assert not trained.training


@pytest.mark.parametrize('method,kw', [('aa', {}), ('ig', dict(n_steps=8)), ('sg', dict(nt_samples=4))])
def test_randomisation_correlation_falls(trained, digits, method, kw):
    _, te = digits
    torch.manual_seed(11); ref = torch.rand(2)
    torch.manual_seed(11)
    df = randomisation_check(trained, te.x[:8], te.y[:8], method, **kw)
    assert torch.equal(torch.rand(2), ref)                               # the caller's random state is untouched
    s = df['spearman'].to_numpy()
    assert s[0] == pytest.approx(1.0, abs=1e-6)
    # it falls as more layers are randomised: lowest at the end, clearly below 1, and a downward trend (not strictly
    # monotone: AA maps of a tiny network fluctuate by a few hundredths between the later steps)
    assert s[-1] < s[0] - 0.05 and s[-1] <= s[1:].min() + 1e-9 and spearmanr(np.arange(len(s)), s)[0] < -0.8, s
    assert s[-1] < s[1] < s[0]
    if method != 'ig': assert s[-1] < 0.5, s                             # randomising everything destroys the map
    else: assert s[-1] > 0.5, s     # IG = x * (mean gradient): the input's zeros keep its ranks (Adebayo et al.)


def test_randomisation_independent_and_errors(trained, digits):
    _, te = digits
    df = randomisation_check(trained, te.x[:4], te.y[:4], 'ig', layer_order='independent', n_steps=4)
    assert df['label'].iloc[1] == df['layer'].iloc[1]
    with pytest.raises(ValueError, match="'bottom_up'"):
        randomisation_check(trained, te.x[:4], te.y[:4], layer_order='bottom_up')
    with pytest.raises(ValueError, match="'lime'"): randomisation_check(trained, te.x[:4], te.y[:4], 'lime')
    with pytest.raises(ValueError, match="'n_steps'"): randomisation_check(trained, te.x[:4], te.y[:4], 'aa', n_steps=3)
    class NoLayers(nn.Module):
        def __init__(self): super().__init__(); self.w = nn.Parameter(torch.randn(24 * 24, 10))
        def forward(self, x): return x.flatten(1) @ self.w
    with pytest.raises(ValueError, match='reset_parameters'): randomisation_check(NoLayers(), te.x[:4], te.y[:4])


# --- plotting -----------------------------------------------------------------------------------------------------------

def test_show_saliency(xs):
    import matplotlib.pyplot as plt
    net = small_net()
    maps = {m: saliency_map(net, xs, method=m) for m in SALIENCY_METHODS}
    masks = xs > 0.5
    fig = show_saliency(xs, maps, masks=masks, n=3, row_labels=['a', 'b', 'c'])
    assert len(fig.axes) == 3 * 4 and fig.axes[1].get_title() == 'aa'
    plt.close(fig)
    fig = show_saliency(torch.rand(2, 3, 8, 8), {'x': torch.rand(2, 8, 8)})
    assert len(fig.axes) == 4
    plt.close(fig)
    with pytest.raises(ValueError, match='maps'): show_saliency(xs, {'aa': torch.rand(4, 1, 5, 5)})
    with pytest.raises(ValueError, match='images'): show_saliency(xs[0], maps)
