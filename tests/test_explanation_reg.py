"""Tests of trustnas_nb.explanation_reg: the EC, CDEP and GMPGC penalties are finite scalars, differentiable w.r.t.
the weights and the architecture parameters of a tiny supernet under functional_call, and leave the model unchanged
(buffers, global pooling, hooks); EC is 0 with an all-relevant mask and grows with the irrelevant area; contextual
decomposition is complete (beta + gamma = the logits) on supernets (DARTS, PC-DARTS) and evaluation networks in
float64, beta = 0 for an empty region, gamma = 0 for the whole image in a bias-free network, and CD is exact on a
linear network; Grad-CAM matches captum's LayerGradCam; GMPGC's composite grid and target; errors name bad values."""
import contextlib
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trustnas_nb.explanation_reg import (EXPLANATION_METHODS, CD_RELU_RULES, CD_BIAS_RULES, CDPair, UnsupportedCDError,
                                         method_options, explanation_penalty, input_gradient_mask,
                                         contextual_decomposition, grad_cam, composite_grid, global_max_pooling,
                                         use_global_max_pooling, prepare_model)
from trustnas_nb.explanation_reg import _tile_target
from trustnas_nb.supernet import build_supernet
from trustnas_nb.evalnet import build_network
from trustnas_nb.datasets import get_dataset

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def batch():
    ds = get_dataset('cluttered_digits', 'train', seed=0)
    return ds.x[:8], ds.y[:8], ds.mask[:8].float()


def _supernet(**kw):
    torch.manual_seed(0)
    return build_supernet('darts', C=4, num_classes=10, layers=2, in_channels=1, **kw)


def _params(net):
    return {**dict(net.named_weights()), **dict(net.named_arch_parameters())}


def _logits(model, x):
    out = model(x)
    return out[0] if isinstance(out, tuple) else out


# --- the penalties ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', list(EXPLANATION_METHODS))
def test_penalty_differentiable_in_weights_and_alpha(batch, kind):
    x, y, gt = batch
    net = _supernet()
    params = _params(net)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    pool = net.global_pooling
    pen = explanation_penalty(kind, net, x, y, params, mask=gt, generator=torch.Generator().manual_seed(0)) \
        if kind == 'gmpgc' else explanation_penalty(kind, net, x, y, params, mask=gt)
    assert pen.dim() == 0 and torch.isfinite(pen) and pen.item() > 0
    gw = torch.autograd.grad(pen, list(net.weights()) + list(net.arch_parameters()), allow_unused=True)
    nw = len(list(net.weights()))
    w_norm = sum(g.abs().sum() for g in gw[:nw] if g is not None)
    a_norm = [g.abs().sum().item() if g is not None else 0.0 for g in gw[nw:]]
    assert w_norm > 0 and all(a > 0 for a in a_norm), (kind, w_norm, a_norm)
    # the model is left as it was: buffers (BN running stats, counters), pooling module, no hooks
    after = net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert net.global_pooling is pool and not pool._forward_hooks


def test_penalties_on_evaluation_network_and_pc_darts(batch):
    "An evaluation network in training mode (auxiliary head, drop-path) and a PC-DARTS supernet (K = 2, edge norm)."
    x, y, gt = (t[:4] for t in batch)
    torch.manual_seed(0)
    ev = build_network('DARTS', C=4, layers=3, num_classes=10, in_channels=1, auxiliary=True, drop_path_prob=0.2)
    pc = _supernet(pc_k=2, edge_norm=True)
    for net, params in ((ev, None), (pc, _params(pc))):
        for kind in EXPLANATION_METHODS:
            net.zero_grad(set_to_none=True)
            pen = explanation_penalty(kind, net, x, y, params, mask=gt)
            pen.backward()
            assert torch.isfinite(pen) and pen.item() > 0, (type(net).__name__, kind)
            assert sum(p.grad.abs().sum() for p in net.parameters() if p.grad is not None) > 0
        if net is pc: assert pc.beta_reduce.grad.abs().sum() > 0


def test_penalty_without_params_uses_model_parameters(batch):
    x, y, gt = batch
    net = _supernet()
    a = explanation_penalty('ec', net, x, y, mask=gt)
    b = explanation_penalty('ec', net, x, y, _params(net), mask=gt)
    assert torch.allclose(a, b, rtol=1e-5)
    a.backward()
    assert net.alpha_reduce.grad is not None and net.alpha_reduce.grad.abs().sum() > 0


def test_penalty_scales_with_lambda(batch):
    x, y, gt = batch
    net = _supernet()
    p1 = explanation_penalty('cdep', net, x, y, mask=gt, lam=1.0)
    p3 = explanation_penalty('cdep', net, x, y, mask=gt, lam=3.0)
    assert torch.allclose(3 * p1, p3) and explanation_penalty('cdep', net, x, y, mask=gt, lam=0.0).item() == 0


def test_ec_zero_with_full_mask_and_grows_with_irrelevant_area(batch):
    x, y, gt = batch
    net = _supernet()
    vals = []
    for k in (32, 24, 16, 8, 0):            # relevant square of side k in the centre: the irrelevant area grows
        m = torch.zeros_like(gt)
        lo = (32 - k) // 2
        m[:, :, lo:lo + k, lo:lo + k] = 1
        vals.append(explanation_penalty('ec', net, x, y, mask=m).item())
    assert vals[0] == 0.0
    assert all(a < b for a, b in zip(vals, vals[1:])), vals


def test_ec_matches_its_formula(batch):
    x, y, gt = batch
    net = _supernet().eval()
    xr = x.clone().requires_grad_(True)
    g, = torch.autograd.grad(F.log_softmax(net(xr), 1).sum(), xr)
    expected = 1000.0 * ((1 - gt) * g).square().flatten(1).sum(1).mean()
    assert torch.allclose(explanation_penalty('ec', net, x, y, mask=gt), expected, rtol=1e-4)


def test_auto_mask_is_top_fraction_of_input_gradient(batch):
    x, y, _ = batch
    net = _supernet()
    m = input_gradient_mask(net, x, y, relevant_fraction=0.25)
    assert m.shape == (8, 1, 32, 32) and set(m.unique().tolist()) <= {0.0, 1.0}
    frac = m.flatten(1).mean(1)
    assert ((frac >= 0.25) & (frac < 0.3)).all(), frac       # ties at the threshold may add a few pixels
    # with no mask, EC and CDEP use this auto mask
    assert torch.allclose(explanation_penalty('ec', net, x, y), explanation_penalty('ec', net, x, y, mask=m), rtol=1e-5)
    assert torch.allclose(explanation_penalty('cdep', net, x, y), explanation_penalty('cdep', net, x, y, mask=m), rtol=1e-5)
    with pytest.raises(ValueError, match='auto_mask=None'):
        explanation_penalty('cdep', net, x, y, auto_mask=None)


# --- contextual decomposition ---------------------------------------------------------------------------------------

def _completeness(model, x, region, **kw):
    torch.manual_seed(1)
    rel, irr = contextual_decomposition(model, x, region, **kw)
    torch.manual_seed(1)
    ref = _logits(model, x)
    return ((rel + irr) - ref).abs().max().item() / ref.abs().max().item()


@pytest.mark.parametrize('relu', CD_RELU_RULES)
@pytest.mark.parametrize('bias', CD_BIAS_RULES)
def test_cd_completeness_supernets(batch, relu, bias):
    x, y, gt = batch
    for kw in (dict(), dict(pc_k=2, edge_norm=True)):
        net = _supernet(**kw).double()
        assert _completeness(net, x.double(), 1 - gt.double(), relu=relu, bias=bias) < 1e-11
        net.eval()
        assert _completeness(net, x.double(), 1 - gt.double(), relu=relu, bias=bias) < 1e-11


@pytest.mark.parametrize('style', ['cifar', 'nb201'])
def test_cd_completeness_evaluation_networks(batch, style):
    x, y, gt = batch
    torch.manual_seed(0)
    if style == 'cifar':
        net = build_network('DARTS', C=4, layers=3, num_classes=10, in_channels=1, auxiliary=True, drop_path_prob=0.2)
    else:
        net = build_network('|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|',
                            style='nb201', C=4, layers=1, num_classes=10, in_channels=1)
    net = net.double()
    for relu in CD_RELU_RULES:
        assert _completeness(net, x.double(), 1 - gt.double(), relu=relu) < 1e-11


def test_cd_empty_region_gives_zero_beta(batch):
    x, _, gt = batch
    for net in (_supernet(), build_network('DARTS', C=4, layers=3, num_classes=10, in_channels=1)):
        for bias in CD_BIAS_RULES:
            rel, irr = contextual_decomposition(net, x, torch.zeros_like(gt), bias=bias)
            assert rel.abs().max().item() == 0.0


def test_cd_whole_image_in_bias_free_network_gives_zero_gamma(batch):
    x, _, gt = batch
    torch.manual_seed(0)
    net = build_network('DARTS', C=4, layers=3, num_classes=10, in_channels=1).eval()
    with torch.no_grad():
        net.classifier.bias.zero_()
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0); m.weight.uniform_(0.5, 1.5); m.bias.zero_()
    for relu in CD_RELU_RULES:
        rel, irr = contextual_decomposition(net, x, torch.ones_like(gt), relu=relu)
        assert irr.abs().max().item() == 0.0
        assert torch.allclose(rel, net(x), atol=1e-5)


def test_cd_exact_on_a_linear_network(batch):
    "No ReLU/max pooling: β = f(x·S) - f(0) and γ = f(x·(1-S)) with the whole bias in γ ('irrelevant')."
    x, _, gt = batch
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(3 * 16 * 16, 10)).double()
    with torch.no_grad():
        lin[1].running_mean.normal_(); lin[1].running_var.uniform_(0.5, 2)
    lin.eval()
    xd, S = x.double(), gt.double()
    rel, irr = contextual_decomposition(lin, xd, S, bias='irrelevant')
    f0 = lin(torch.zeros_like(xd))
    assert torch.allclose(rel, lin(xd * S) - f0, atol=1e-12)
    assert torch.allclose(irr, lin(xd * (1 - S)), atol=1e-12)


def test_cd_relu_and_maxpool_rules():
    torch.manual_seed(0)
    b, g = torch.randn(4, 3, 6, 6), torch.randn(4, 3, 6, 6)
    out = F.relu(CDPair(b, g, relu_rule='cdep'))
    assert torch.equal(out.rel, F.relu(b)) and torch.allclose(out.irr, F.relu(b + g) - F.relu(b))
    out = F.relu(CDPair(b, g, relu_rule='shapley'))
    assert torch.allclose(out.rel, 0.5 * (F.relu(b) + F.relu(b + g) - F.relu(g)))
    mp = F.max_pool2d(CDPair(b, g), 2)
    _, idx = F.max_pool2d(b + g, 2, return_indices=True)
    assert torch.equal(mp.rel, b.flatten(2).gather(2, idx.flatten(2)).view(4, 3, 3, 3))
    assert torch.allclose(mp.full, F.max_pool2d(b + g, 2))


def test_cd_differentiable_in_params(batch):
    x, y, gt = batch
    net = _supernet()
    rel, irr = contextual_decomposition(net, x, 1 - gt, _params(net))
    rel.sum().backward()
    assert net.alpha_reduce.grad.abs().sum() > 0 and net.stem[0].weight.grad.abs().sum() > 0


def test_cd_unsupported_operation_is_named(batch):
    x, _, gt = batch

    class Squarer(nn.Module):
        def forward(self, x): return (x * x).flatten(1)

    class Tanh(nn.Module):
        def forward(self, x): return torch.tanh(x).flatten(1)

    with pytest.raises(UnsupportedCDError, match='mul'):
        contextual_decomposition(Squarer(), x, gt)
    with pytest.raises(UnsupportedCDError, match='tanh'):
        contextual_decomposition(Tanh(), x, gt)


# --- Grad-CAM and GMPGC -------------------------------------------------------------------------------------------

class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 8, 3, padding=1))
        self.global_pooling, self.classifier = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 10)

    def forward(self, x): return self.classifier(self.global_pooling(self.features(x)).flatten(1))


def test_grad_cam_matches_captum(batch):
    from captum.attr import LayerGradCam
    x, y, _ = batch
    torch.manual_seed(0)
    tiny = TinyCNN()
    for gmp in (False, True):
        for relu in (False, True):
            with (global_max_pooling(tiny) if gmp else contextlib.nullcontext()):
                ours = grad_cam(tiny, x, y, relu=relu)
                ref = LayerGradCam(tiny, tiny.features).attribute(x, target=y, relu_attributions=relu)[:, 0]
            assert ref.abs().max() > 1e-4 and torch.allclose(ours, ref, rtol=1e-5, atol=1e-8), (gmp, relu)
    assert not tiny.global_pooling._forward_hooks and isinstance(tiny.global_pooling, nn.AdaptiveAvgPool2d)


def test_elementwise_cam_with_gap_is_gradcam_and_gmp_is_sparse(batch):
    x, y, _ = batch
    torch.manual_seed(0)
    tiny = TinyCNN()
    # with global average pooling the feature gradient is spatially constant: both kinds coincide
    assert torch.allclose(grad_cam(tiny, x, y, kind='elementwise'), grad_cam(tiny, x, y), atol=1e-6)
    with global_max_pooling(tiny):
        cam = grad_cam(tiny, x, y, kind='elementwise')
    assert ((cam > 0).flatten(1).sum(1) <= 8).all()      # at most one arg-max position per channel


def test_composite_grid_and_target():
    torch.manual_seed(0)
    N = 6
    x = torch.arange(N, dtype=torch.float).view(N, 1, 1, 1).expand(N, 1, 4, 4).clone()
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    grid, cells = composite_grid(x, y, torch.Generator().manual_seed(0))
    assert grid.shape == (N, 1, 8, 8)
    for i in range(N):
        r, c = divmod(int(cells[i]), 2)
        tiles = [grid[i, 0, rr * 4, cc * 4].item() for rr in range(2) for cc in range(2)]
        assert tiles[int(cells[i])] == i
        others = [t for q, t in enumerate(tiles) if q != int(cells[i])]
        assert all(t != i and y[int(t)] != y[i] for t in others)      # distractors: other images of other classes
    cam = torch.rand(N, 2, 2)
    T = _tile_target(cam, cells)
    for i in range(N):
        r, c = divmod(int(cells[i]), 2)
        assert torch.equal(T[i, 2 * r:2 * r + 2, 2 * c:2 * c + 2], cam[i])
        assert T[i].sum().item() == pytest.approx(cam[i].sum().item())


def test_gmpgc_zero_for_a_consistent_network():
    """Feature map = the image, class k reads channel k, image i carries a dot in channel y_i only. Distractors of
    other classes are invisible to class y_i's CAM, so the composite's CAM is the image's own CAM in its cell: R = 0.
    With every image of one class the distractors' dots appear in the composite's CAM: R > 0."""
    class Reader(nn.Module):
        def __init__(self, K):
            super().__init__()
            self.global_pooling, self.classifier = nn.AdaptiveAvgPool2d(1), nn.Linear(K, K)
            with torch.no_grad(): self.classifier.weight.copy_(torch.eye(K))
        def forward(self, x): return self.classifier(self.global_pooling(x).flatten(1))
    K = 4
    torch.manual_seed(0)
    def dots(y):
        x = torch.zeros(len(y), K, 4, 4)
        for i, k in enumerate(y.tolist()): x[i, k, torch.randint(4, ()), torch.randint(4, ())] = 1.0
        return x
    y = torch.arange(K)
    for max_pool in (False, True):
        pen = explanation_penalty('gmpgc', Reader(K), dots(y), y, max_pool=max_pool, lam=1.0,
                                  generator=torch.Generator().manual_seed(0))
        assert pen.item() < 1e-6
    y0 = torch.zeros(K, dtype=torch.long)
    pen = explanation_penalty('gmpgc', Reader(K), dots(y0), y0, max_pool=False, lam=1.0,
                              generator=torch.Generator().manual_seed(0))
    assert pen.item() > 1e-2


def test_prepare_model_and_global_max_pooling():
    net = _supernet()
    with global_max_pooling(net):
        assert isinstance(net.global_pooling, nn.AdaptiveMaxPool2d)
    assert isinstance(net.global_pooling, nn.AdaptiveAvgPool2d)
    assert prepare_model('ec', net) is net and isinstance(net.global_pooling, nn.AdaptiveAvgPool2d)
    assert prepare_model('GMPGC', net) is net and isinstance(net.global_pooling, nn.AdaptiveMaxPool2d)
    use_global_max_pooling(net)            # idempotent
    assert isinstance(net.global_pooling, nn.AdaptiveMaxPool2d)
    assert dict(net.named_weights()).keys() == dict(_supernet().named_weights()).keys()


# --- errors -------------------------------------------------------------------------------------------------------

def test_errors_name_bad_values(batch):
    x, y, gt = batch
    net = _supernet()
    with pytest.raises(ValueError, match="'rrr'"): explanation_penalty('rrr', net, x, y)
    with pytest.raises(ValueError, match='-1.0'): explanation_penalty('ec', net, x, y, lam=-1.0)
    with pytest.raises(ValueError, match='nan'): explanation_penalty('ec', net, x, y, lam=float('nan'))
    with pytest.raises(ValueError, match='True'): method_options('ec', lam=True)
    with pytest.raises(ValueError, match='temperature'): explanation_penalty('gmpgc', net, x, y, temperature=0.5)
    with pytest.raises(ValueError, match=r'\(8, 1, 32, 16\)'): explanation_penalty('ec', net, x, y, mask=gt[..., :16])
    with pytest.raises(ValueError, match='mask values'): explanation_penalty('ec', net, x, y, mask=2 * gt)
    with pytest.raises(ValueError, match=r'\(1, 32, 32\)'): explanation_penalty('ec', net, x[0], y)
    with pytest.raises(ValueError, match=r'\(7,\)'): explanation_penalty('ec', net, x, y[:7])
    with pytest.raises(ValueError, match='12'): explanation_penalty('cdep', net, x, torch.full((8,), 12), mask=gt)
    with pytest.raises(ValueError, match="'gelu'"): explanation_penalty('cdep', net, x, y, mask=gt, relu='gelu')
    with pytest.raises(ValueError, match="'sum'"): explanation_penalty('cdep', net, x, y, mask=gt, bias='sum')
    with pytest.raises(ValueError, match="'grad'"): explanation_penalty('gmpgc', net, x, y, cam='grad')
    with pytest.raises(ValueError, match='1.5'): explanation_penalty('ec', net, x, y, relevant_fraction=1.5)
    with pytest.raises(ValueError, match='at least 2'): explanation_penalty('gmpgc', net, x[:1], y[:1])
    with pytest.raises(ValueError, match='global_pooling'): grad_cam(nn.Sequential(nn.Flatten(), nn.Linear(1024, 10)), x, y)
    with pytest.raises(ValueError, match='divisible'):
        explanation_penalty('gmpgc', net, x[:, :, :30, :30], y)     # 30 -> 15 -> 8, 60 -> 30 -> 15 != 16


def test_defaults_are_the_papers():
    assert EXPLANATION_METHODS['ec']['lam'] == 1000.0       # Ross et al. 2017, lambda_1
    assert EXPLANATION_METHODS['gmpgc']['lam'] == 25.0      # Pillai & Pirsiavash 2021, ImageNet ResNet-18
    assert EXPLANATION_METHODS['gmpgc']['max_pool'] is True
    assert EXPLANATION_METHODS['cdep']['relu'] == 'cdep' and EXPLANATION_METHODS['cdep']['bias'] == 'proportional'
    assert method_options('cdep', lam=2) == {**EXPLANATION_METHODS['cdep'], 'lam': 2.0}
