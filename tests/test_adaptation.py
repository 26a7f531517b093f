"""Tests of trustnas_nb.adaptation: the distances of DALBG's domain-adaptation term (eqs. 2.6-2.8) and of Table 2.8's
ablation (MMD, CORAL, KL, CDD): ~0 for identical sets, positive and growing with a shift, hand computations (MMD on
three points, CORAL against numpy, the 1-D Gaussian KL), CDD's intra/inter parts, eq. 2.7 as printed, group_discrepancy,
gradients, and errors that name the bad value."""
import math
import numpy as np
import pytest
import torch

from trustnas_nb.adaptation import (DISTANCES, mmd, soft_mmd, coral, kl_divergence, cdd, group_discrepancy,
                                    median_bandwidths)

pytestmark = pytest.mark.usefixtures('one_thread')


def _data(n=80, m=70, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(m, d, generator=g, dtype=torch.float64)


def _call(name, X, Y):
    if name == 'cdd':
        return cdd(X, Y, torch.arange(len(X)) % 2, torch.arange(len(Y)) % 2)
    return DISTANCES[name](X, Y)


def test_distances_registry():
    assert set(DISTANCES) == {'mmd', 'coral', 'kl', 'cdd'}


@pytest.mark.parametrize('name', ['mmd', 'coral', 'kl'])
def test_identical_zero_and_shift_grows(name):
    X, _ = _data()
    assert abs(float(_call(name, X, X.clone()))) < 1e-8
    # a shift (location for MMD / KL, scale for CORAL, which ignores locations) makes it positive and growing
    shift = (lambda s: X + s) if name != 'coral' else (lambda s: X * (1 + s))
    vals = [float(_call(name, X, shift(s))) for s in (0.5, 1.0, 2.0)]
    assert vals[0] > 1e-3 and vals[0] < vals[1] < vals[2], vals


def test_cdd_identical_and_class_shift():
    g = torch.Generator().manual_seed(1)
    lab = torch.arange(80) % 2
    X = torch.randn(80, 2, generator=g, dtype=torch.float64) + 3 * lab[:, None]
    bw = [1.0, 2.0]                                     # fixed bandwidths: values comparable across calls
    c, intra, inter = cdd(X, X, lab, lab, bandwidths=bw, return_parts=True)
    assert abs(float(intra)) < 1e-10                   # intra-class MMD vanishes for identically distributed classes
    assert float(inter) > 0 and abs(float(c + inter)) < 1e-10   # so CDD = -inter (Kang et al.'s definition)
    # class 1 shifted in the second domain (towards class 0): CDD grows with the shift
    vals = []
    for s in (0.5, 1.0, 2.0):
        Y = X.clone(); Y[lab == 1] -= s
        vals.append(float(cdd(X, Y, lab, lab, bandwidths=bw)))
    assert float(c) < vals[0] < vals[1] < vals[2], vals
    # the classes swapped across domains: every intra-class pair is far apart, CDD is positive
    assert float(cdd(X, X, lab, 1 - lab, bandwidths=bw)) > 0.5
    # a single common class: inter term is 0
    c1, i1, e1 = cdd(X, X + 1, lab, torch.ones(80, dtype=torch.long), return_parts=True)
    assert float(e1) == 0 and float(c1) == float(i1) > 0


def test_mmd_hand_computation():
    X = torch.tensor([[0.], [1.]], dtype=torch.float64)
    Y = torch.tensor([[0.], [2.], [3.]], dtype=torch.float64)
    s = 1.5
    k = lambda a, b: math.exp(-(a - b) ** 2 / (2 * s * s))
    xs, ys = [0., 1.], [0., 2., 3.]
    kxx = sum(k(a, b) for a in xs for b in xs)
    kyy = sum(k(a, b) for a in ys for b in ys)
    kxy = sum(k(a, b) for a in xs for b in ys)
    biased = kxx / 4 + kyy / 9 - 2 * kxy / 6
    unbiased = (kxx - 2) / 2 + (kyy - 3) / 6 - 2 * kxy / 6
    assert float(mmd(X, Y, bandwidths=[s])) == pytest.approx(biased, abs=1e-12)
    assert float(mmd(X, Y, bandwidths=s, unbiased=True)) == pytest.approx(unbiased, abs=1e-12)
    # two bandwidths: the kernels are averaged
    k2 = lambda a, b: 0.5 * (math.exp(-(a - b) ** 2 / 2) + math.exp(-(a - b) ** 2 / 8))
    b2 = (sum(k2(a, b) for a in xs for b in xs) / 4 + sum(k2(a, b) for a in ys for b in ys) / 9
          - 2 * sum(k2(a, b) for a in xs for b in ys) / 6)
    assert float(mmd(X, Y, bandwidths=[1., 2.])) == pytest.approx(b2, abs=1e-12)
    # linear kernel = eq. 2.6, squared distance of the means
    assert float(mmd(X, Y, kernel='linear')) == pytest.approx((0.5 - 5 / 3) ** 2, abs=1e-12)


def test_median_bandwidths():
    X = torch.tensor([[0.], [1.]]); Y = torch.tensor([[3.]])
    # distinct pairs: 1, 9, 4 -> median 4 -> sigma_med 2
    assert median_bandwidths(X, Y) == pytest.approx([0.5, 1., 2., 4., 8.])
    assert median_bandwidths(torch.zeros(2, 2), torch.zeros(1, 2))[2] == 1.0   # all coincide: fallback 1


def test_mmd_unbiased_near_zero_same_law():
    vals = [float(mmd(*_data(60, 60, 2, seed=s), unbiased=True, bandwidths=[1.0])) for s in range(10)]
    assert abs(np.mean(vals)) < 5e-3 and min(vals) < 0       # unbiased: centred on 0, so sometimes negative
    biased = [float(mmd(*_data(60, 60, 2, seed=s), bandwidths=[1.0])) for s in range(10)]
    assert min(biased) > 0 and np.mean(biased) > np.mean(vals)


def test_soft_mmd_eq27():
    X, _ = _data(6, 2, 3)
    w = torch.tensor([1., 1., 1., 0., 0., 0.], dtype=torch.float64)
    assert float(soft_mmd(X, w)) == pytest.approx(float(mmd(X[:3], X[3:], kernel='linear')), abs=1e-12)
    raw = ((2 * w - 1) @ X / 6).pow(2).sum()
    assert float(soft_mmd(X, w, normalise=False)) == pytest.approx(float(raw), abs=1e-12)
    assert float(soft_mmd(X, w, normalise=False)) == pytest.approx(float(soft_mmd(X, w)) / 4, abs=1e-12)


def test_coral_matches_numpy():
    X, Y = _data(30, 20, 4)
    Y = Y * torch.tensor([1., 2., 0.5, 1.], dtype=torch.float64)
    ref = ((np.cov(X.numpy(), rowvar=False) - np.cov(Y.numpy(), rowvar=False)) ** 2).sum() / (4 * 16)
    assert float(coral(X, Y)) == pytest.approx(ref, rel=1e-10)
    assert float(coral(X, X + 5)) == pytest.approx(0, abs=1e-12)


def test_kl_gaussian_closed_form():
    X, Y = _data(200, 300, 1)
    Y = 2 + 3 * Y
    r = 1e-3
    vx, vy = float(X.var()) + r, float(Y.var()) + r
    ref = 0.5 * (vx / vy + float(Y.mean() - X.mean()) ** 2 / vy - 1 + math.log(vy / vx))
    assert float(kl_divergence(X, Y)) == pytest.approx(ref, rel=1e-9)
    rev = 0.5 * (vy / vx + float(Y.mean() - X.mean()) ** 2 / vx - 1 + math.log(vx / vy))
    assert float(kl_divergence(X, Y, symmetric=True)) == pytest.approx(0.5 * (ref + rev), rel=1e-9)
    # multivariate: against torch.distributions
    X, Y = _data(50, 40, 3)
    Y = Y @ torch.tensor([[1., .3, 0], [0, 1., .2], [0, 0, 2.]], dtype=torch.float64) + 1
    I = torch.eye(3, dtype=torch.float64)
    P = torch.distributions.MultivariateNormal(X.mean(0), torch.cov(X.T) + r * I)
    Q = torch.distributions.MultivariateNormal(Y.mean(0), torch.cov(Y.T) + r * I)
    assert float(kl_divergence(X, Y)) == pytest.approx(float(torch.distributions.kl_divergence(P, Q)), rel=1e-8)
    # n <= d: the ridge keeps it finite
    assert math.isfinite(float(kl_divergence(torch.randn(3, 5), torch.randn(4, 5))))


@pytest.mark.parametrize('name', ['mmd', 'coral', 'kl', 'cdd'])
def test_gradients_flow(name):
    X, Y = _data(20, 16, 3)
    X = (X + 0.5).requires_grad_()
    gX, = torch.autograd.grad(_call(name, X, Y), X)
    assert torch.isfinite(gX).all() and gX.abs().sum() > 0


def test_gradient_descent_reduces_mmd():
    X, Y = _data(30, 30, 2)
    X = (X + 2).requires_grad_()
    before = float(mmd(X.detach(), Y, bandwidths=[1., 2.]))
    opt = torch.optim.SGD([X], lr=5.)
    for _ in range(20):
        opt.zero_grad(); mmd(X, Y, bandwidths=[1., 2.]).backward(); opt.step()
    assert float(mmd(X.detach(), Y, bandwidths=[1., 2.])) < 0.5 * before


def test_group_discrepancy():
    X, Y = _data(20, 30, 3)
    feats = torch.cat([X, Y + 1])
    groups = torch.tensor([0] * 20 + [1] * 30)
    assert float(group_discrepancy(feats, groups, 0)) == pytest.approx(float(mmd(X, Y + 1)), abs=1e-12)
    assert float(group_discrepancy(feats, groups, 1, 'coral')) == pytest.approx(float(coral(Y + 1, X)), abs=1e-12)
    probs = torch.nn.functional.one_hot(groups, 3).double() * 0.8 + 0.05          # soft (N, K): argmax
    assert float(group_discrepancy(feats, probs, 0, 'kl')) == pytest.approx(float(kl_divergence(X, Y + 1)), abs=1e-12)
    labels = torch.arange(50) % 2
    ref = cdd(X, Y + 1, labels[:20], labels[20:])
    assert float(group_discrepancy(feats, groups, 0, 'cdd', labels=labels)) == pytest.approx(float(ref), abs=1e-12)
    assert float(group_discrepancy(feats, groups, 0, 'mmd', kernel='linear')) == pytest.approx(
        float((X.mean(0) - (Y + 1).mean(0)).pow(2).sum()), abs=1e-12)


def test_errors_name_the_value():
    X, Y = _data(5, 4, 3)
    with pytest.raises(ValueError, match=r'X must be 2-D.*\(5,\)'): mmd(X[:, 0], Y)
    with pytest.raises(ValueError, match=r'same number of features.*\(4, 2\)'): coral(X, Y[:, :2])
    with pytest.raises(ValueError, match="kernel.*'poly'"): mmd(X, Y, kernel='poly')
    with pytest.raises(ValueError, match=r'bandwidths.*-1'): mmd(X, Y, bandwidths=[1., -1.])
    with pytest.raises(ValueError, match=r'Y needs at least 2.*\(1, 3\)'): coral(X, Y[:1])
    with pytest.raises(ValueError, match=r'Y needs at least 2'): mmd(X, Y[:1], unbiased=True)
    with pytest.raises(ValueError, match=r'ridge.*-0.1'): kl_divergence(X, Y, ridge=-0.1)
    with pytest.raises(ValueError, match=r'no class.*\[0\].*\[1\]'):
        cdd(X, Y, torch.zeros(5, dtype=torch.long), torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r'labels_x.*\(3,\)'): cdd(X, Y, torch.zeros(3), torch.zeros(4))
    groups = torch.zeros(9, dtype=torch.long)
    feats = torch.cat([X, Y])
    with pytest.raises(ValueError, match=r'k=1 has 0 of 9'): group_discrepancy(feats, groups, 1)
    with pytest.raises(ValueError, match=r'k=0 has 9 of 9'): group_discrepancy(feats, groups, 0)
    with pytest.raises(ValueError, match="distance.*'wasserstein'"): group_discrepancy(feats, groups, 0, 'wasserstein')
    with pytest.raises(ValueError, match='labels=None'):
        group_discrepancy(feats, torch.arange(9) % 2, 0, 'cdd')
    with pytest.raises(ValueError, match=r'groups must have shape.*\(8,\)'): group_discrepancy(feats, groups[:8], 0)
    with pytest.raises(ValueError, match=r'weights must lie in \[0, 1\]'): soft_mmd(X, torch.tensor([0., 1, 2, 0, 1]))
