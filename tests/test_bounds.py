"""Tests of trustnas_nb.bounds, the certified-bound engine: soundness (every bound holds at sampled and attacked points
of the ε-ball, in ℓ∞, ℓ2 and ℓ1, for IBP, CROWN-IBP, CROWN and α-CROWN), exactness (ε = 0; linear networks),
tightness (CROWN-IBP and CROWN against IBP on a trained network), gradients (autograd against finite differences),
errors that name the bad value, and certified radii."""
import math
from typing import Callable, NamedTuple
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trustnas_nb.bounds import (NORMS, METHODS, UnsupportedOperationError, compute_bounds, certified_bounds,
                                certified_radius)
from trustnas_nb.supernet import build_supernet, MixedOp, channel_shuffle
from trustnas_nb.evalnet import build_network
from trustnas_nb.ops import Identity, Zero, FactorizedReduce, make_op
from trustnas_nb.datasets import get_dataset

TOL = 1e-5                          # absolute and relative tolerance for float32 rounding


@pytest.fixture(scope='module', autouse=True)
def _single_thread(one_thread):
    "conftest's one thread, set up before this module's model fixtures."
    yield


# --- models ----------------------------------------------------------------------------------------------------------

def randomize(model, seed=0):
    "Random running BatchNorm statistics (and affine parameters, of both signs) and random α / β: non-trivial bounds."
    g = torch.Generator().manual_seed(seed)
    u = lambda t, a, b: t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) * (b - a) + a)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                u(m.running_mean, -0.5, 0.5); u(m.running_var, 0.5, 2.0)
                if m.weight is not None: u(m.weight, -1.5, 1.5); u(m.bias, -0.3, 0.3)
        for n, p in model.named_parameters():
            if n.startswith(('alpha', 'beta')) or n.endswith('.alpha'):
                p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model.eval()


def tiny_supernet(space='darts', K=4, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {**dict(C=4, layers=3, n_nodes=2, in_channels=1, num_classes=K), **kw}
    if space == 's1': kw.pop('n_nodes')       # S1 has a different operation pair on each of its 14 edges: 4 nodes
    return randomize(build_supernet(space, **kw), seed)


def tiny_evalnet(name, K=4, seed=0, in_channels=3, C=4):
    torch.manual_seed(seed)
    return randomize(build_network(name, C=C, layers=3, num_classes=K, in_channels=in_channels), seed)


def train(model, steps, lr=0.01, seed=0, bs=64, size=8):
    "A few dozen Adam steps on the embedded digits (`size`×`size`; every parameter, α included), then eval mode."
    torch.manual_seed(seed)
    d = get_dataset('digits', 'train', image_size=size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        i = torch.randint(0, len(d.y), (bs,), generator=g)
        loss = F.cross_entropy(model(d.x[i]), d.y[i])
        opt.zero_grad(); loss.backward(); opt.step()
    return model.eval()


class Head(nn.Module):
    "One operation under test, then flatten → Linear → ReLU → Linear: the operation's bounds feed a refined ReLU."
    def __init__(self, op, in_shape, K=4, hidden=8):
        super().__init__()
        self.op = op
        with torch.no_grad(): n = op.eval()(torch.zeros(2, *in_shape)).flatten(1).shape[1]
        self.fc1, self.fc2 = nn.Linear(n, hidden), nn.Linear(hidden, K)
    def forward(self, x): return self.fc2(F.relu(self.fc1(self.op(x).flatten(1))))


class WeightedSum(nn.Module):
    "A softmax-weighted sum of branches (a hand-written mixed operation): products with a parameter, a buffer, constants."
    def __init__(self, C):
        super().__init__()
        self.branches = nn.ModuleList([nn.Conv2d(C, C, 3, padding=1), nn.AvgPool2d(3, 1, 1), Identity(), nn.MaxPool2d(3, 1, 1)])
        self.alpha = nn.Parameter(torch.randn(len(self.branches)))
        self.gain = nn.Parameter(torch.randn(C, 1, 1))
        self.register_buffer('scale', torch.linspace(-1.5, 1.0, C).view(C, 1, 1))
    def forward(self, x):
        w = F.softmax(self.alpha, 0)
        s = sum(wi * b(x) for wi, b in zip(w, self.branches))
        return s * self.scale - 0.7 * x + self.gain * s / 2 - 0.25


class AddOp(nn.Module):
    def __init__(self, C):
        super().__init__(); self.conv = nn.Conv2d(C, C, 3, padding=1)
    def forward(self, x): return x + self.conv(x) - F.relu(x)


class CatOp(nn.Module):
    def __init__(self, C):
        super().__init__(); self.conv = nn.Conv2d(C, 2, 1)
        self.register_buffer('const', torch.randn(1, 1, 6, 6))
    def forward(self, x):
        return torch.cat([x, self.conv(x), F.relu(x), self.const.expand(x.shape[0], -1, -1, -1)], dim=1)


class PCMixed(nn.Module):
    "PC-DARTS' mixed operation (partial channels, K=2, then channel shuffle) under softmax weights of its own α."
    def __init__(self, C, stride, ops=('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect', 'sep_conv_3x3', 'dil_conv_3x3')):
        super().__init__()
        self.mixed = MixedOp(C, stride, ops, pc_k=2)
        self.alpha = nn.Parameter(torch.randn(len(ops)))
    def forward(self, x): return self.mixed(x, F.softmax(self.alpha, -1))


class Shuffle(nn.Module):
    def __init__(self, C):
        super().__init__(); self.conv = nn.Conv2d(C, C, 1)
    def forward(self, x): return channel_shuffle(self.conv(x), 2)


class Mean(nn.Module):
    def forward(self, x): return x.mean((2, 3))


C1 = 4                              # channels of the one-operation networks' inputs (C1 × 6 × 6)
ONE_OPS = {
    'conv':          lambda: nn.Conv2d(C1, C1, 3, padding=1),
    'conv_stride2':  lambda: nn.Conv2d(C1, C1, 3, stride=2, padding=1, bias=False),
    'conv_depthwise': lambda: nn.Conv2d(C1, C1, 3, padding=1, groups=C1, bias=False),
    'conv_dilated':  lambda: nn.Conv2d(C1, C1, 3, padding=2, dilation=2),
    'batchnorm':     lambda: nn.BatchNorm2d(C1),
    'relu':          lambda: nn.ReLU(),
    'avgpool_excl_pad': lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
    'avgpool_incl_pad': lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=True),
    'avgpool_stride2': lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
    'maxpool_3x3_s1': lambda: nn.MaxPool2d(3, 1, 1),
    'maxpool_3x3_s2': lambda: nn.MaxPool2d(3, 2, 1),
    'maxpool_2x2_s2': lambda: nn.MaxPool2d(2, 2),
    'identity':      lambda: Identity(),
    'zero':          lambda: Zero(1),
    'zero_stride2':  lambda: Zero(2),
    'factorized_reduce': lambda: FactorizedReduce(C1, C1),
    'pc_mixed':      lambda: PCMixed(C1, 1),
    'pc_mixed_stride2': lambda: PCMixed(C1, 2),
    'channel_shuffle': lambda: Shuffle(C1),
    'add':           lambda: AddOp(C1),
    'weighted_sum':  lambda: WeightedSum(C1),
    'cat':           lambda: CatOp(C1),
    'global_avgpool': lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
    'mean':          lambda: Mean(),
    'linear':        lambda: nn.Sequential(nn.Flatten(), nn.Linear(C1 * 36, 12), nn.ReLU(), nn.Linear(12, 10)),
    'sep_conv_3x3':  lambda: make_op('sep_conv_3x3', C1, 1),
    'dil_conv_5x5_s2': lambda: make_op('dil_conv_5x5', C1, 2),
}

def trained_supernet():
    "A darts-space supernet trained for 40 steps on 6x6 digits from its initialization: better than chance (10%)."
    torch.manual_seed(5)
    net = train(build_supernet('darts', C=4, layers=3, n_nodes=2, in_channels=1, num_classes=10), 40, size=6)
    te = get_dataset('digits', 'test', image_size=6)
    with torch.no_grad(): assert (net(te.x).argmax(1) == te.y).float().mean() > 0.25
    return net


def digits(n, g, size=6):
    "`n` test digits (`size`×`size`) and their labels: inputs of the trained supernet's soundness checks."
    te = get_dataset('digits', 'test', image_size=size)
    i = torch.randperm(len(te.y), generator=g)[:n]
    return te.x[i], te.y[i]


class Spec(NamedTuple):
    build: Callable                 # () -> model in eval mode
    shape: tuple                    # per-sample input shape
    eps: float                      # base ℓ∞ radius (ℓ2 and ℓ1: see eps_for)
    factors: tuple                  # one input per factor, with radius eps · factor: a batch of per-input radii
    inputs: Callable = None         # (n, generator) -> (x, y); default: Gaussian inputs and random labels


# The darts-space supernets (and S1's) run on 6x6 inputs: odd sizes after the first reduction exercise FactorizedReduce's
# padding, and CROWN costs about 2.5x more at 8x8 (every max-pool input is refined). PC-DARTS needs even sizes at its
# reductions (its 2x2 max-pool bypass), so it runs on 8x8.
FACTORS = (0.25, 1.0, 2.5)          # from nearly linear to very loose
FEW = (0.4, 2.0)                    # the costliest models under CROWN: two inputs
OP_FACTORS = (0.1, 0.3, 1.0, 3.0)
ZOO = {
    **{f'op_{k}': Spec(lambda f=f: randomize(Head(f(), (C1, 6, 6)), 1), (C1, 6, 6), 0.1, OP_FACTORS) for k, f in ONE_OPS.items()},
    'op_factorized_reduce_odd': Spec(lambda: randomize(Head(FactorizedReduce(C1, C1), (C1, 5, 5)), 1), (C1, 5, 5), 0.1, OP_FACTORS),
    'supernet_darts':  Spec(lambda: tiny_supernet('darts'), (1, 6, 6), 0.02, FEW),
    'supernet_pcdarts': Spec(lambda: tiny_supernet('darts', pc_k=2, edge_norm=True, seed=1), (1, 8, 8), 0.02, FEW),
    'supernet_s1':     Spec(lambda: tiny_supernet('s1', seed=2), (1, 6, 6), 0.02, FACTORS),
    'supernet_s2':     Spec(lambda: tiny_supernet('s2', seed=3), (1, 8, 8), 0.02, FACTORS),
    'supernet_s3':     Spec(lambda: tiny_supernet('s3', seed=4), (1, 8, 8), 0.02, FACTORS),
    'supernet_trained': Spec(trained_supernet, (1, 6, 6), 0.01, FEW, digits),
    'eval_DARTS_V2':   Spec(lambda: tiny_evalnet('DARTS_V2'), (3, 8, 8), 0.02, FACTORS),
    'eval_PC_DARTS_cifar': Spec(lambda: tiny_evalnet('PC_DARTS_cifar', seed=1), (3, 8, 8), 0.02, FACTORS),
    'eval_PDARTS':     Spec(lambda: tiny_evalnet('PDARTS', seed=2), (3, 8, 8), 0.02, FACTORS),
}


class Zoo:
    "Each model built (and traced by the engine, which caches per model object and input shape) once for the module."
    def __init__(self): self.models, self.attacks = {}, {}
    def __call__(self, name):
        if name not in self.models: self.models[name] = ZOO[name].build()
        return self.models[name], ZOO[name]


@pytest.fixture(scope='module')
def zoo(): return Zoo()


# --- points of the ε-ball ----------------------------------------------------------------------------------------------

def project(delta, eps, norm):
    "Euclidean projection of the rows of `delta` (M, d) onto the `norm` balls of radii `eps` (M,)."
    e = eps.view(-1, 1)
    if norm == 'linf': return torch.maximum(torch.minimum(delta, e), -e)
    if norm == 'l2': return delta * (e / delta.norm(dim=1, keepdim=True).clamp_min(1e-30)).clamp(max=1.0)
    a = delta.abs()                                   # ℓ1: the sort-based algorithm (Duchi et al. 2008)
    mu = a.sort(1, descending=True).values
    cs = mu.cumsum(1)
    k = torch.arange(1, a.shape[1] + 1, dtype=a.dtype)
    rho = ((mu - (cs - e) / k > 0) * k).amax(1, keepdim=True).clamp_min(1)
    theta = ((cs.gather(1, rho.long() - 1) - e) / rho).clamp_min(0)
    out = delta.sign() * (a - theta).clamp_min(0)
    return torch.where(a.sum(1, keepdim=True) <= e, delta, out)


def ball_points(eps, norm, d, n, g):
    """`n` points (n, d) of the `norm` ball of radius `eps` (a float): half on its extreme set (ℓ∞: random corners, sign
    vectors; ℓ2: the sphere; ℓ1: distinct vertices ±ε·e_k), half inside."""
    nb = n // 2
    if norm == 'linf':
        edge = torch.randint(0, 2, (nb, d), generator=g).float() * 2 - 1
        inner = torch.rand(n - nb, d, generator=g) * 2 - 1
    elif norm == 'l2':
        s = torch.randn(n, d, generator=g); s = s / s.norm(dim=1, keepdim=True)
        edge, inner = s[:nb], s[nb:] * torch.rand(n - nb, 1, generator=g) ** (1 / d)
    else:
        idx = torch.randperm(2 * d, generator=g)[:nb]
        edge = torch.zeros(len(idx), d)
        edge[torch.arange(len(idx)), idx % d] = torch.where(idx < d, 1.0, -1.0)
        lap = torch.empty(n - len(idx), d).exponential_(generator=g) * (torch.randint(0, 2, (n - len(idx), d), generator=g) * 2 - 1)
        inner = lap / lap.abs().sum(1, keepdim=True) * torch.rand(n - len(idx), 1, generator=g)
    return torch.cat([edge, inner]) * eps


def pgd_margins(model, x, y, eps, norm, steps=10, g=None):
    """PGD minimizing each margin logit_y − logit_j (j ≠ y) of each input over its ball, from a random start.
    Returns the attacked points (N·(K−1), *shape) and the input index and class j of each."""
    N, shape = x.shape[0], x.shape[1:]
    d = x[0].numel()
    with torch.no_grad(): K = model(x[:1]).shape[1]
    ii = torch.tensor([i for i in range(N) for j in range(K) if j != y[i]])
    jj = torch.tensor([j for i in range(N) for j in range(K) if j != y[i]])
    e, x0, y0 = eps[ii], x[ii].reshape(len(ii), d), y[ii]
    delta = torch.stack([ball_points(float(e[r]), norm, d, 2, g)[1] for r in range(len(ii))])
    step = 2.5 * e.view(-1, 1) / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        out = model((x0 + delta).view(-1, *shape))
        loss = (out.gather(1, y0.view(-1, 1)) - out.gather(1, jj.view(-1, 1))).sum()
        (gr,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            if norm == 'linf': upd = gr.sign()
            elif norm == 'l2': upd = gr / gr.norm(dim=1, keepdim=True).clamp_min(1e-30)
            else:                                        # ℓ1 steepest descent: the largest few coordinates of the gradient
                q = max(1, d // 32)
                top = gr.abs().topk(q, dim=1).indices
                upd = torch.zeros_like(gr).scatter_(1, top, gr.gather(1, top).sign() / q)
            delta = project(delta - step * upd, e, norm)
    return (x0 + delta.detach()).view(-1, *shape), ii, jj


def eps_for(eps_linf, norm, d):
    "Comparable radii: the ℓ2 / ℓ1 balls reach about as far into the input as the ℓ∞ one."
    return {'linf': eps_linf, 'l2': eps_linf * math.sqrt(d) / 2, 'l1': eps_linf * d / 8}[norm]


# --- 1. soundness ----------------------------------------------------------------------------------------------------

N_SAMPLES = 96                      # random points of each ball (plus its centre and one PGD point per class j ≠ y)

ONE_OP_NAMES = [f'op_{k}' for k in ONE_OPS] + ['op_factorized_reduce_odd']
BIG_NAMES = ['supernet_darts', 'supernet_pcdarts', 'supernet_s1', 'supernet_s2', 'supernet_s3', 'supernet_trained',
             'eval_DARTS_V2', 'eval_PC_DARTS_cifar', 'eval_PDARTS']
# α-CROWN (20 optimization steps per bound) is checked on a subset, to save time: the one-operation networks whose
# relaxations it changes (ReLU, max pooling, the mixed operations) in every norm, and one supernet and one evaluation
# network in ℓ∞ and ℓ2.
ALPHA_CASES = [(n, norm) for n in ['op_relu', 'op_maxpool_3x3_s1', 'op_maxpool_3x3_s2', 'op_maxpool_2x2_s2', 'op_pc_mixed',
                                   'op_pc_mixed_stride2', 'op_weighted_sum', 'op_sep_conv_3x3'] for norm in NORMS] + \
              [(n, norm) for n in ['supernet_s3', 'eval_PDARTS'] for norm in ('linf', 'l2')]
SOUND_CASES = [(n, norm, m) for n in ONE_OP_NAMES + BIG_NAMES for norm in NORMS for m in ('ibp', 'crown-ibp', 'crown')] + \
              [(n, norm, 'alpha-crown') for n, norm in ALPHA_CASES]


def attack(zoo, name, norm, seed=0):
    """The inputs of a model's soundness checks in `norm`, with their labels and radii, and the points of their balls
    (centre, N_SAMPLES random points, PGD points) with the model's logits there; computed once per (model, norm)."""
    key = (name, norm)
    if key in zoo.attacks: return zoo.attacks[key]
    model, spec = zoo(name)
    g = torch.Generator().manual_seed(seed)
    N, d, shape = len(spec.factors), math.prod(spec.shape), spec.shape
    if spec.inputs is not None: x, y = spec.inputs(N, g)
    else:
        x = torch.randn(N, *shape, generator=g) * (0.5 if shape[0] == 1 else 1.0)
        with torch.no_grad(): K = model(x[:1]).shape[1]
        y = torch.randint(0, K, (N,), generator=g)
    eps = torch.tensor([eps_for(spec.eps * f, norm, d) for f in spec.factors])
    adv, ii, _ = pgd_margins(model, x, y, eps, norm, g=g)
    pts, owner = [x], [torch.arange(N)]
    for i in range(N):
        pts.append(x[i] + ball_points(float(eps[i]), norm, d, N_SAMPLES, g).view(-1, *shape))
        owner.append(torch.full((N_SAMPLES,), i))
    pts, owner = torch.cat(pts + [adv]), torch.cat(owner + [ii])
    dist = (pts - x[owner]).flatten(1).norm(p={'linf': float('inf'), 'l2': 2, 'l1': 1}[norm], dim=1)
    assert (dist <= eps[owner] * (1 + 1e-5) + 1e-6).all(), 'a test point lies outside its ball'
    with torch.no_grad(): out = model(pts)
    zoo.attacks[key] = (x, y, eps, out, owner)
    return zoo.attacks[key]


def violations(lb, lo, hi, y, out, owner):
    "Every margin lower bound above a margin, and every logit outside its interval, at the points `out` (their logits)."
    bad = []
    for i in range(len(y)):
        o = out[owner == i]
        worst = (o[:, y[i]:y[i] + 1] - o).min(0).values
        for j in torch.nonzero(lb[i] > worst + TOL + TOL * worst.abs()).flatten().tolist():
            bad.append(f'input {i}: margin lower bound lb[{j}] = {lb[i, j]:.6g} > margin {worst[j]:.6g} at a point of the ball')
        out_of = (o < lo[i] - TOL - TOL * o.abs()).any(0) | (o > hi[i] + TOL + TOL * o.abs()).any(0)
        for k in torch.nonzero(out_of).flatten().tolist():
            bad.append(f'input {i}: logit {k} takes values in [{o[:, k].min():.6g}, {o[:, k].max():.6g}], '
                       f'outside its bounds [{lo[i, k]:.6g}, {hi[i, k]:.6g}]')
    return bad


@pytest.mark.parametrize('name, norm, method', SOUND_CASES)
def test_soundness(zoo, name, norm, method):
    "certified_bounds' margin lower bounds and compute_bounds' logit intervals hold at every sampled and attacked point."
    model, spec = zoo(name)
    x, y, eps, out, owner = attack(zoo, name, norm)
    N, K = len(spec.factors), out.shape[1]
    with torch.no_grad():
        lb = certified_bounds(model, x, y, eps, norm, method)
        lo, hi = compute_bounds(model, x, eps, norm, method)
    assert lb.shape == (N, K) and lo.shape == hi.shape == (N, K)
    assert torch.isfinite(lb).all() and torch.isfinite(lo).all() and torch.isfinite(hi).all()
    assert (lb.gather(1, y.view(-1, 1)) == 0).all() and (lo <= hi).all()
    assert torch.unique(owner).tolist() == list(range(N))           # N (input, ball) pairs, each with its points
    bad = violations(lb, lo, hi, y, out, owner)
    assert not bad, f'{name}, {norm}, {method}: unsound bounds:\n' + '\n'.join(bad)


def test_soundness_pair_count():
    "The soundness checks cover at least 1000 (input, ball) pairs: each case checks one ball around each of its inputs."
    pairs = sum(len(ZOO[n].factors) for n, _, _ in SOUND_CASES)
    print(f'soundness: {len(SOUND_CASES)} cases, {pairs} (input, ball) pairs, each against {N_SAMPLES} samples + PGD')
    assert pairs >= 1000
    assert {n for n, _, _ in SOUND_CASES} >= set(BIG_NAMES) | set(ONE_OP_NAMES)
    assert {(norm, m) for _, norm, m in SOUND_CASES} == {(norm, m) for norm in NORMS for m in METHODS}


@pytest.mark.parametrize('name, norm', [('op_maxpool_3x3_s1', 'linf'), ('op_conv', 'l1'), ('supernet_s3', 'l2')])
def test_soundness_check_has_teeth(zoo, name, norm):
    "The sampled and attacked points do expose bounds that are too tight: CROWN's bounds for a ball half as large."
    model, _ = zoo(name)
    x, y, eps, out, owner = attack(zoo, name, norm)
    with torch.no_grad():
        lb = certified_bounds(model, x, y, eps / 2, norm, 'crown')
        lo, hi = compute_bounds(model, x, eps / 2, norm, 'crown')
    assert len(violations(lb, lo, hi, y, out, owner)) > 0


# --- 2. exactness ----------------------------------------------------------------------------------------------------

# every one-operation network, and three of the large ones (1-3 s each: α-CROWN optimizes its slopes even at ε = 0)
EXACT_NAMES = ONE_OP_NAMES + ['supernet_darts', 'supernet_pcdarts', 'eval_PC_DARTS_cifar']

@pytest.mark.parametrize('name', EXACT_NAMES)
def test_eps_zero_is_exact(zoo, name):
    "At ε = 0 every method's lower and upper bounds are the model's output, and the margin bounds its margins."
    model, spec = zoo(name)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, *spec.shape, generator=g)
    with torch.no_grad():
        out = model(x)
        y = (out.argmax(1) + torch.arange(2)) % out.shape[1]          # one correct label, one (probably) wrong one
        for method, norm in zip(METHODS, ('linf', 'l2', 'l1', 'linf')):
            lo, hi = compute_bounds(model, x, 0.0, norm, method)
            assert torch.allclose(lo, out, atol=TOL, rtol=TOL) and torch.allclose(hi, out, atol=TOL, rtol=TOL), method
        lb = certified_bounds(model, x, y, 0.0, 'l2', 'crown')
    assert torch.allclose(lb, out.gather(1, y.view(-1, 1)) - out, atol=TOL, rtol=TOL)


@pytest.fixture(scope='module')
def linear_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(48, 4))
    return randomize(net)


@pytest.mark.parametrize('norm, eps', [('linf', 0.1), ('l2', 0.5), ('l1', 2.0)])
def test_linear_network_crown_is_exact(linear_net, norm, eps):
    """A purely linear network (conv, BN, average pooling, flatten, linear): CROWN's bounds are the exact extremes over
    the ball, the values at the maximizing points (ℓ∞: the corner sign(∇); ℓ2: ε∇/‖∇‖; ℓ1: the vertex of the largest
    |∇_k|); IBP's interval contains them and is wider."""
    net = linear_net
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    J = torch.autograd.functional.jacobian(lambda z: net(z).sum(0), x[:1])[:, 0].reshape(4, -1)   # (K, d), the same everywhere
    if norm == 'linf': dirs = J.sign()
    elif norm == 'l2': dirs = J / J.norm(dim=1, keepdim=True)
    else: dirs = torch.zeros_like(J).scatter_(1, J.abs().argmax(1, keepdim=True), J.gather(1, J.abs().argmax(1, keepdim=True)).sign())
    with torch.no_grad():
        at = lambda s: torch.stack([net(x + s * eps * dirs[k].view(1, 1, 8, 8))[:, k] for k in range(4)], 1)
        best_hi, best_lo = at(1.0), at(-1.0)
        for method in ('crown', 'alpha-crown', 'crown-ibp'):
            lo, hi = compute_bounds(net, x, eps, norm, method)
            assert torch.allclose(hi, best_hi, atol=1e-4) and torch.allclose(lo, best_lo, atol=1e-4), method
        ilo, ihi = compute_bounds(net, x, eps, norm, 'ibp')
        # the margins: exact too, (logit_y − logit_j) − ε‖J_y − J_j‖_dual
        y = torch.tensor([0, 3])
        lb = certified_bounds(net, x, y, eps, norm, 'crown')
        dual = {'linf': 1, 'l2': 2, 'l1': float('inf')}[norm]
        out = net(x)
        exact = out.gather(1, y.view(-1, 1)) - out - eps * (J[y].unsqueeze(1) - J.unsqueeze(0)).norm(p=dual, dim=-1)
    assert torch.allclose(lb, exact, atol=1e-4)
    assert (ilo <= best_lo + TOL).all() and (ihi >= best_hi - TOL).all()
    assert (ihi - ilo).sum() > 1.05 * (best_hi - best_lo).sum()       # conv and linear weights of both signs: IBP is looser


# --- 3. tightness ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def digits_net():
    """A small evaluation network (DARTS_V2, C=2, 3 cells) trained for a few seconds on the 8x8 digits, the test set and
    its predictions."""
    torch.manual_seed(0)
    net = train(build_network('DARTS_V2', C=2, layers=3, num_classes=10, in_channels=1), 100, lr=0.02)
    te = get_dataset('digits', 'test')
    with torch.no_grad(): pred = net(te.x).argmax(1)
    assert (pred == te.y).float().mean() > 0.6
    return net, te.x, te.y, pred


def test_tightness_on_trained_network(digits_net):
    "Mean certified ℓ∞ radius: CROWN-IBP > 2x IBP's, CROWN > 3x CROWN-IBP's, on 8 correctly classified test digits."
    net, x, y, pred = digits_net
    ok = torch.nonzero(pred == y).flatten()[:8]
    xs, ys = x[ok], y[ok]
    r = {m: certified_radius(net, xs, ys, 'linf', m, rtol=0.1, eps0=4e-3 if m == 'crown' else 1e-3)
         for m in ('ibp', 'crown-ibp', 'crown')}
    f1, f2 = (r['crown-ibp'].mean() / r['ibp'].mean()).item(), (r['crown'].mean() / r['crown-ibp'].mean()).item()
    print(f"mean radii: ibp {r['ibp'].mean():.3g}, crown-ibp {r['crown-ibp'].mean():.3g}, crown {r['crown'].mean():.3g}; "
          f"crown-ibp / ibp = {f1:.2f}, crown / crown-ibp = {f2:.2f}")
    assert (r['ibp'] > 0).all()                                          # every input certified by every method
    assert f1 > 2 and f2 > 3                                            # measured: 3.1 and 7.0
    assert (r['crown'] >= r['crown-ibp'] * 0.9).all()                   # CROWN dominates CROWN-IBP (up to rtol 0.1)


@pytest.mark.parametrize('norm, eps', [('linf', 0.004), ('l1', 0.1)])
def test_crown_never_looser_than_crown_ibp(digits_net, norm, eps):
    "CROWN's intermediate bounds are CROWN-IBP's intersected with back-substituted ones: its margin bounds are never lower."
    net, x, y, pred = digits_net
    xs, ys = x[:8], pred[:8]
    with torch.no_grad():
        a = certified_bounds(net, xs, ys, eps, norm, 'crown-ibp')
        b = certified_bounds(net, xs, ys, eps, norm, 'crown')
        c = certified_bounds(net, xs, ys, eps, norm, 'ibp')
    assert (b >= a - TOL).all()
    assert (b - a).sum() > 0 and (a - c).sum() > 0                     # and not all equal: the comparison means something


# --- 4. gradients ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def net64():
    "A random darts-space supernet in float64 on 4x4 inputs, an input and its label."
    net = tiny_supernet('darts', K=3, seed=7).double()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64) * 0.5
    with torch.no_grad(): y = net(x).argmax(1)
    return net, x, y


@pytest.mark.parametrize('method', ['ibp', 'crown-ibp', 'crown'])
def test_gradients_match_finite_differences(net64, method):
    "d/dθ Σ certified_bounds for α entries (normal and reduction) and conv weight entries, against central differences."
    net, x, y = net64
    f = lambda: certified_bounds(net, x, y, 0.05, 'linf', method).sum()
    net.zero_grad()
    f().backward()
    assert net.alpha_normal.grad.abs().sum() > 0 and net.alpha_reduce.grad.abs().sum() > 0
    cell_conv = net.cells[1].edges[0].ops['sep_conv_3x3'][0][1].weight         # a depthwise conv of a reduction cell's op
    h = 1e-6
    for p in (net.alpha_normal, net.alpha_reduce, net.stem[0].weight, cell_conv):
        idx = tuple(int(i) for i in torch.unravel_index(p.grad.abs().argmax(), p.shape))   # an entry with a non-zero gradient
        with torch.no_grad():
            p[idx] += h; fp = f().item()
            p[idx] -= 2 * h; fm = f().item()
            p[idx] += h
        fd, ad = (fp - fm) / (2 * h), p.grad[idx].item()
        assert ad != 0 and abs(ad - fd) <= 1e-4 * abs(fd) + 1e-7, (method, p.shape, idx, ad, fd)


# --- 5. bad inputs ---------------------------------------------------------------------------------------------------

class Product(nn.Module):
    def __init__(self):
        super().__init__(); self.conv = nn.Conv2d(1, 1, 3, padding=1); self.fc = nn.Linear(64, 3)
    def forward(self, x): return self.fc((x * self.conv(x)).flatten(1))


def test_bad_arguments_name_the_value(zoo):
    model, spec = zoo('supernet_s3')
    x, y = torch.randn(2, *spec.shape), torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r'eps must be >= 0.*got -0\.1'): certified_bounds(model, x, y, -0.1)
    with pytest.raises(ValueError, match=r'eps must be >= 0.*got -0\.5'): compute_bounds(model, x, torch.tensor([0.1, -0.5]))
    with pytest.raises(ValueError, match=r'eps.*nan'): certified_bounds(model, x, y, float('nan'))
    with pytest.raises(ValueError, match=r'eps.*shape \(3,\)'): certified_bounds(model, x, y, torch.tensor([0.1, 0.1, 0.1]))
    with pytest.raises(ValueError, match=r"norm.*'l3'"): certified_bounds(model, x, y, 0.1, norm='l3')
    with pytest.raises(ValueError, match=r"method.*'crown\+\+'"): compute_bounds(model, x, 0.1, method='crown++')
    with pytest.raises(ValueError, match=r'label 7.*4 classes'): certified_bounds(model, x, torch.tensor([0, 7]), 0.1)
    with pytest.raises(ValueError, match=r'label -1'): certified_bounds(model, x, torch.tensor([-1, 0]), 0.1)
    with pytest.raises(ValueError, match=r'y must have shape \(2,\).*\(2, 1\)'): certified_bounds(model, x, y.view(2, 1), 0.1)
    with pytest.raises(ValueError, match=r'y must have shape \(2,\).*\(3,\)'): certified_bounds(model, x, torch.tensor([0, 1, 2]), 0.1)
    with pytest.raises(ValueError, match=r'x must be a batch.*\(64,\)'): certified_bounds(model, torch.randn(64), y[:1], 0.1)
    with pytest.raises(ValueError, match=r'\(N, 3, 8, 8\)'): compute_bounds(model, torch.randn(2, 3, 8, 8), 0.1)
    with pytest.raises(ValueError, match=r'\(N, 8, 8\)'): compute_bounds(model, torch.randn(2, 8, 8), 0.1)
    with pytest.raises(ValueError, match=r'rtol.*1\.5'): certified_radius(model, x, y, rtol=1.5)
    with pytest.raises(ValueError, match=r'eps0.*-1'): certified_radius(model, x, y, eps0=-1)


@pytest.mark.parametrize('kind', ['sigmoid', 'product', 'noise', 'bn_batch_stats'])
def test_unsupported_operations_raise(kind):
    torch.manual_seed(0)
    x = torch.randn(2, 1, 8, 8)
    if kind == 'sigmoid':
        model, match = nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.Sigmoid()), 'sigmoid'
    elif kind == 'product':
        model, match = Product(), 'product of two input-dependent tensors'
    elif kind == 'noise':
        model, match = build_supernet('s4', C=4, layers=3, n_nodes=2, in_channels=1, num_classes=3), 'random'
    else:
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False), nn.Flatten(), nn.Linear(72, 3))
        match = 'running statistics'
    with pytest.raises(UnsupportedOperationError, match=match):
        certified_bounds(model, x, torch.tensor([0, 1]), 0.1, 'linf', 'crown-ibp')
    assert issubclass(UnsupportedOperationError, ValueError)


# --- 6. certified radius ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('norm, method', [('linf', 'crown-ibp'), ('l2', 'crown-ibp'), ('l1', 'ibp')])
def test_certified_radius(digits_net, norm, method):
    """0 for misclassified inputs; the bounds certify at the radius and not at radius·(1 + 2·rtol) (bisection); PGD at
    the radius never flips a prediction."""
    net, x, y, pred = digits_net
    rtol = 0.02
    wrong = torch.nonzero(pred != y).flatten()[:3]
    right = torch.nonzero(pred == y).flatten()[:8]
    idx = torch.cat([wrong, right])
    xs, ys = x[idx], y[idx]
    r = certified_radius(net, xs, ys, norm, method, rtol=rtol, eps0=1e-3)
    assert len(wrong) == 3 and (r[:3] == 0).all()
    assert (r[3:] > 0).all()
    xr, yr, rr = xs[3:], ys[3:], r[3:]
    with torch.no_grad():
        at = certified_bounds(net, xr, yr, rr, norm, method)
        above = certified_bounds(net, xr, yr, rr * (1 + 2 * rtol) + 1e-7, norm, method)
    others = ~F.one_hot(yr, 10).bool()
    assert (at[others].view(len(rr), 9) > 0).all()
    not_cert = ~(above[others].view(len(rr), 9) > 0).all(1)
    assert not_cert.float().mean() >= 0.75, not_cert
    adv, ii, _ = pgd_margins(net, xr, yr, rr, norm, steps=20, g=torch.Generator().manual_seed(0))
    with torch.no_grad(): assert (net(adv).argmax(1) == yr[ii]).all()
