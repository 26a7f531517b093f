"Chapter 2's baselines: DeepMoE-style and MGE-CNN-style mixtures of experts, bagging."
import pytest
import torch
from torch import nn
import torch.nn.functional as F
from trustnas_nb.moe import MixtureOfExperts, Bagging, bootstrap_indices, fit_classifier, fit_bagging, predict


def _lin(d=4, c=3): return nn.Linear(d, c)


def test_deepmoe_mixes_logits_with_relu_gates():
    torch.manual_seed(0)
    m = MixtureOfExperts(_lin(4, 2), [_lin(), _lin()], 'deepmoe', sparsity=0.01)
    x = torch.randn(5, 4)
    g = F.relu(m.gate(x))
    want = g[:, :1] * m.experts[0](x) + g[:, 1:] * m.experts[1](x)
    assert torch.allclose(m(x), want)
    assert torch.allclose(m.regularizer(), 0.01 * g.sum(1).mean())


def test_mge_is_a_mixture_of_probabilities_plus_each_experts_loss():
    torch.manual_seed(1)
    m = MixtureOfExperts(_lin(4, 2), [_lin(), _lin()], 'mge')
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    g = F.softmax(m.gate(x), 1)
    p = g[:, :1] * F.softmax(m.experts[0](x), 1) + g[:, 1:] * F.softmax(m.experts[1](x), 1)
    out = m(x)
    assert torch.allclose(out.exp(), p, atol=1e-6) and torch.allclose(out.exp().sum(1), torch.ones(6))
    want = (F.cross_entropy(m.experts[0](x), y) + F.cross_entropy(m.experts[1](x), y)) / 2
    assert torch.allclose(m.regularizer(y=y), want)


def test_bagging_averages_probabilities_and_resamples_with_replacement():
    torch.manual_seed(2)
    a, b = _lin(), _lin(); x = torch.randn(3, 4)
    assert torch.allclose(Bagging([a, b])(x).exp(), (F.softmax(a(x), 1) + F.softmax(b(x), 1)) / 2, atol=1e-6)
    idx = bootstrap_indices(200, 2, seed=0)
    assert all(len(i) == 200 and len(set(i.tolist())) < 200 for i in idx)    # with replacement: repeats
    assert not torch.equal(idx[0], idx[1])


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown mixture style 'switch'"): MixtureOfExperts(_lin(4, 2), [_lin()], 'switch')
    with pytest.raises(ValueError, match='sparsity must be'): MixtureOfExperts(_lin(4, 2), [_lin()], sparsity=-1)
    with pytest.raises(ValueError, match='at least one'): Bagging([])


def test_fit_trains_mixtures_and_bagging_on_a_separable_task():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g); y = (x[:, 0] + x[:, 1] > 0).long()
    for style in ('deepmoe', 'mge'):
        torch.manual_seed(0)
        m = MixtureOfExperts(_lin(4, 2), [_lin(4, 2), _lin(4, 2)], style)
        fit_classifier(m, (x, y), epochs=10, lr=0.1, batch_size=32)
        assert float((predict(m, x) == y).float().mean()) > 0.9, style
    bag = fit_bagging(lambda: _lin(4, 2), 3, (x, y), epochs=10, lr=0.1, batch_size=32)
    assert len(bag.models) == 3 and float((predict(bag, x) == y).float().mean()) > 0.9
