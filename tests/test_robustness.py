"""Tests of trustnas_nb.robustness: an attack never succeeds below a certified radius (l_inf: PGD, FGSM, APGD; l2: PGD-L2,
APGD-L2, C&W's distances), robust accuracy below clean accuracy and falling with PGD iterations, FGSM at eps 0,
determinism, the training hooks of evalnet.train_network (bit-identical without them, the Jacobian regularizer
shrinks the Jacobian, adversarial training raises PGD accuracy, the adversary runs in eval mode inside the ball),
averaged certified bounds on an evaluation network with its auxiliary head and drop-path, and errors that name the
bad value."""
import math
import time
import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn
from torch.utils.data import DataLoader

from trustnas_nb.robustness import (ATTACKS, BUDGETS, STAND_INS, THESIS_ATTACKS, AUTOATTACK_FAST, CW_SETTINGS,
                                    JACOBIAN_DEFAULTS, ADV_TRAINING_DEFAULTS, RETRAINING, Logits, Normalized, budget,
                                    make_attack, attack_settings, robust_accuracy, pgd_curve, jacobian_regularizer,
                                    pgd_adversary, train_robust, mean_certified_bound, check_images)
from trustnas_nb.bounds import certified_radius
from trustnas_nb.evalnet import (build_network, train_network, evaluate, Cutout, random_crop_flip, set_drop_path,
                                 split_output)
from trustnas_nb.datasets import get_dataset


@pytest.fixture(scope='module', autouse=True)
def _single_thread(one_thread):
    "conftest's one thread, set up before this module's model fixtures."
    yield


# --- one tiny evaluation network, trained once -----------------------------------------------------------------------

TRAIN = dict(epochs=3, lr=0.1, drop_path_prob=0.1, seed=0, progress=False)   # ~75% test accuracy in a few seconds


def _loader(seed=0):
    tr = get_dataset('digits', 'train')
    return DataLoader(tr.tensor_dataset(), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(seed))


def _tiny(seed=0):
    "DARTS_V2 evaluation network, C=2, 3 cells, with the auxiliary head (drop-path set by training)."
    torch.manual_seed(seed)
    return build_network('DARTS_V2', C=2, layers=3, num_classes=10, in_channels=1, auxiliary=True)


@pytest.fixture(scope='module')
def digits():
    te = get_dataset('digits', 'test')
    return te.x, te.y


@pytest.fixture(scope='module')
def net():
    "Standard training (train_robust mode 'standard'); left in training mode, with drop-path set, as training leaves it."
    n = _tiny()
    train_robust(n, _loader(), mode='standard', dataset='digits', **TRAIN)
    assert n.training and n.drop_path_prob > 0 and n.auxiliary_head is not None
    return n


@pytest.fixture(scope='module')
def radii(net, digits):
    "Certified l_inf and l2 radii (CROWN-IBP) of 40 test digits; at least a dozen certified (correctly classified) inputs."
    x, y = digits[0][:40], digits[1][:40]
    r = {norm: certified_radius(net, x, y, norm, 'crown-ibp', rtol=0.01) for norm in ('linf', 'l2')}
    ok = (r['linf'] > 0).nonzero().flatten()
    assert len(ok) >= 12 and torch.equal(ok, (r['l2'] > 0).nonzero().flatten())
    return x, y, r, ok


def _pred(model, x):
    was = model.training; model.eval()
    with torch.no_grad(): p = Logits(model)(x).argmax(1)
    model.train(was)
    return p


# --- 1. soundness: no attack below a certified radius -----------------------------------------------------------------

def test_linf_attacks_never_succeed_below_certified_radius(net, radii, digits):
    "PGD (10 steps of eps/4), FGSM and the fast AutoAttack at 0.99 x each input's certified l_inf radius never flip it."
    x, y, r, ok = radii
    net.eval()
    for j, i in enumerate(ok.tolist()):
        eps = 0.99 * r['linf'][i].item()
        xi, yi = x[i:i + 1], y[i:i + 1]
        names = ('pgd', 'fgsm') + (('autoattack_linf',) if j < 4 else ())     # APGD-CE + APGD-T on a few (slower)
        for name in names:
            kw = dict(step=eps / 4) if name == 'pgd' else {}
            adv = make_attack(name, net, 'digits', eps=eps, autoattack='fast', **kw)(xi, yi)
            assert (adv - xi).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
            assert _pred(net, adv).item() == yi.item(), (name, i, eps)
    # not vacuous: at the digits' budget (eps 0.3) the same PGD fools most of these inputs
    adv = make_attack('pgd', net, 'digits')(x[ok], y[ok])
    assert (_pred(net, adv) != y[ok]).float().mean() > 0.5
    net.train()


def test_l2_attacks_never_succeed_below_certified_radius(net, radii):
    "PGD-L2 and the fast AutoAttack-L2 at 0.99 x the l2 radius never flip; every C&W success lies beyond the radius."
    x, y, r, ok = radii
    net.eval()
    for j, i in enumerate(ok.tolist()):
        eps = 0.99 * r['l2'][i].item()
        xi, yi = x[i:i + 1], y[i:i + 1]
        for name in ('pgd_l2',) + (('autoattack_l2',) if j < 4 else ()):
            kw = dict(iterations=10) if name == 'pgd_l2' else {}
            adv = make_attack(name, net, 'digits', eps=eps, autoattack='fast', **kw)(xi, yi)
            assert (adv - xi).flatten().norm() <= eps * (1 + 1e-5)
            assert _pred(net, adv).item() == yi.item(), (name, i, eps)
    # C&W is unbounded: where it succeeds, its perturbation is at least the certified radius
    adv = make_attack('cw', net, 'digits')(x[ok], y[ok])
    fooled = _pred(net, adv) != y[ok]
    dist = (adv - x[ok]).flatten(1).norm(dim=1)
    assert fooled.any()                                                 # not vacuous
    assert (dist[fooled] >= r['l2'][ok][fooled]).all()
    print(f"C&W fooled {fooled.float().mean():.0%}; its distance / certified radius: min "
          f"{(dist[fooled] / r['l2'][ok][fooled]).min():.1f}")
    net.train()


# --- 2. robust accuracy ----------------------------------------------------------------------------------------------

def test_robust_accuracy_below_clean_and_falls_with_iterations(net, digits):
    x, y = digits[0][:120], digits[1][:120]
    plan = {'pgd10': dict(attack='pgd', iterations=10, eps=0.05), 'pgd100': dict(attack='pgd', iterations=100, eps=0.05),
            'fgsm': dict(attack='fgsm'), 'aa': dict(attack='autoattack_linf', eps=0.05)}
    net.train()
    acc = robust_accuracy(net, x, y, plan, dataset='digits', autoattack='fast', progress=False)
    assert net.training                                                 # the caller's mode is restored
    clean = 100 * (_pred(net, x) == y).float().mean().item()
    assert acc['clean'] == pytest.approx(clean)
    assert all(acc[k] <= acc['clean'] for k in plan)
    assert acc['pgd100'] <= acc['pgd10'] + 2.0                          # more iterations never much weaker
    assert acc['pgd10'] < acc['clean'] - 5                              # the attack does something at eps 0.05
    curve = pgd_curve(net, x, y, iterations=(1, 5, 20), dataset='digits', eps=0.05, progress=False)
    assert curve.iterations.tolist() == [1, 5, 20] and curve.attrs['clean'] == pytest.approx(clean)
    assert curve.accuracy.iloc[-1] <= curve.accuracy.iloc[0] + 2.0


def test_fgsm_at_eps_zero_is_clean(net, digits):
    x, y = digits[0][:64], digits[1][:64]
    acc = robust_accuracy(net, x, y, {'fgsm0': dict(attack='fgsm', eps=0.0), 'pgd0': dict(attack='pgd', eps=0.0)},
                          dataset='digits', progress=False)
    assert acc['fgsm0'] == acc['clean'] == acc['pgd0']
    net.eval()
    assert torch.equal(make_attack('fgsm', net, 'digits', eps=0.0)(x, y), x)
    net.train()


def test_deterministic_with_seed_and_caller_rng_untouched(net, digits):
    x, y = digits[0][:48], digits[1][:48]
    attacks = {'pgd': dict(attack='pgd', iterations=5, eps=0.05), 'aa': dict(attack='autoattack_linf', eps=0.05)}
    torch.manual_seed(123); before = torch.rand(3)
    torch.manual_seed(123)
    a = robust_accuracy(net, x, y, attacks, 'digits', batch_size=16, seed=5, autoattack='fast', progress=False)
    after = torch.rand(3)
    b = robust_accuracy(net, x, y, attacks, 'digits', batch_size=16, seed=5, autoattack='fast', progress=False)
    assert a == b
    assert torch.equal(before, after)                                   # the global random state is not consumed


def test_normalized_wrapper_attacks_in_pixel_space(net, digits):
    x, y = digits[0][:32], digits[1][:32]
    mean, std = [0.3], [0.4]
    net.eval()
    base = Logits(net)
    class OnNormalized(nn.Module):                                      # a model that expects normalized inputs
        def __init__(self): super().__init__(); self.net = base
        def forward(self, z): return self.net(z * 0.4 + 0.3)
    wrapped = Normalized(OnNormalized().eval(), mean, std)
    assert not wrapped.training                                         # mirrors the wrapped model's mode
    assert torch.allclose(wrapped(x), base(x), atol=1e-5)
    a = robust_accuracy(wrapped, x, y, ['fgsm'], 'digits', progress=False)
    b = robust_accuracy(net, x, y, ['fgsm'], 'digits', progress=False)
    assert a['clean'] == b['clean'] and abs(a['fgsm'] - b['fgsm']) <= 100 / 32 + 1e-9
    with pytest.raises(ValueError, match=r'Normalized\(model, mean, std\)'):
        robust_accuracy(wrapped, (x - 0.3) / 0.4, y, ['fgsm'], 'digits', progress=False)
    net.train()


def test_budgets_registry_and_attack_objects(net):
    assert BUDGETS['cifar10']['linf'] == 8 / 255 and BUDGETS['imagenet']['linf'] == 2 / 255 and BUDGETS['mnist']['linf'] == 0.3
    assert all(b['pgd_step'] == 2 / 255 and b['fgsm'] == 2 / 255 and b['l2'] == 1.0 for b in BUDGETS.values())
    assert budget('digits') == BUDGETS['mnist'] and budget('objects10') == BUDGETS['cifar10'] and STAND_INS['digits'] == 'mnist'
    assert set(THESIS_ATTACKS) <= set(ATTACKS) and 'pgd' in ATTACKS
    pgd = make_attack('pgd100', net, 'cifar10')
    assert isinstance(pgd, torchattacks.PGD) and pgd.steps == 100 and pgd.eps == 8 / 255 and pgd.alpha == 2 / 255
    assert make_attack('pgd', net, 'imagenet', iterations=7).steps == 7
    assert make_attack('fgsm', net, 'mnist').eps == 2 / 255
    cw = make_attack('cw', net)
    assert isinstance(cw, torchattacks.CW) and cw.steps == 60 == CW_SETTINGS['steps']
    std = make_attack('autoattack_l2', net, 'mnist')
    assert isinstance(std, torchattacks.AutoAttack) and std.eps == 1.0 and std.norm == 'L2' and std.n_classes == 10
    fast = make_attack('autoattack_linf', net, 'mnist', autoattack='fast')
    apgd, apgdt = fast.attacks
    assert isinstance(fast, torchattacks.MultiAttack) and isinstance(apgd, torchattacks.APGD) and isinstance(apgdt, torchattacks.APGDT)
    assert apgd.eps == 0.3 and apgd.steps == AUTOATTACK_FAST['steps'] and apgdt.n_target_classes == AUTOATTACK_FAST['n_target_classes']
    assert len(attack_settings('digits')) == len(ATTACKS)
    assert set(RETRAINING.values()) == {'jacobian', 'adversarial'} and JACOBIAN_DEFAULTS['lam'] == 0.01
    assert ADV_TRAINING_DEFAULTS['iters'] == 7


# --- 3. training hooks -----------------------------------------------------------------------------------------------

def _train_network_before(model, train_loader, epochs=1, lr=0.025, momentum=0.9, weight_decay=3e-4, grad_clip=5.0,
                          auxiliary_weight=0.4, drop_path_prob=0.2, cutout=0, augment=False, max_steps=None, seed=None):
    "evalnet.train_network's training loop as it was before the hooks (commit 5934e7f), without logging."
    if seed is not None: torch.manual_seed(seed)
    cut = Cutout(cutout, torch.Generator().manual_seed(0 if seed is None else seed)) if cutout else None
    aug_g = torch.Generator().manual_seed(1 if seed is None else seed + 1) if augment else None
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, float(epochs), eta_min=0.0)
    for epoch in range(epochs):
        set_drop_path(model, drop_path_prob * epoch / epochs)
        model.train()
        for step, (x, y) in enumerate(train_loader):
            if max_steps is not None and step >= max_steps: break
            if aug_g is not None: x = random_crop_flip(x, 4, aug_g)
            if cut is not None: x = cut(x)
            opt.zero_grad(set_to_none=True)
            logits, aux = split_output(model(x))
            loss = F.cross_entropy(logits, y)
            full = loss + auxiliary_weight * F.cross_entropy(aux, y) if (aux is not None and auxiliary_weight) else loss
            full.backward()
            if grad_clip: nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
        sched.step()


def test_train_network_without_hooks_is_bit_identical_to_before():
    kw = dict(epochs=2, lr=0.05, drop_path_prob=0.2, cutout=3, augment=True, max_steps=3, seed=4)
    a, b = _tiny(1), _tiny(1)
    hist = train_network(a, _loader(2), progress=False, **kw)
    _train_network_before(b, _loader(2), **kw)
    assert 'train_reg' not in hist.columns
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def _exact_jacobian_fro(model, x):
    "‖J(x_i)‖_F for each input, exactly (torch.func.jacrev, eval mode)."
    was = model.training; model.eval()
    f = lambda xi: Logits(model)(xi.unsqueeze(0)).squeeze(0)
    J = torch.stack([torch.func.jacrev(f)(xi) for xi in x])
    model.train(was)
    return J.flatten(1).norm(dim=1)


def test_jacobian_regularizer_shrinks_the_jacobian(net, digits):
    "Same init, data order and recipe as the standard network, plus lam/2 ‖J‖_F²: a smaller exact Jacobian norm."
    reg = _tiny()
    hist = train_robust(reg, _loader(), mode='jacobian', dataset='digits', lam=0.1, **TRAIN)
    assert 'train_reg' in hist.columns and (hist.train_reg > 0).all()
    assert hist.train_acc.iloc[-1] > 0.3                                # it still learns: not a collapsed network
    x = digits[0][:12]
    j_std, j_reg = _exact_jacobian_fro(net, x), _exact_jacobian_fro(reg, x)
    print(f"mean ‖J‖_F: standard {j_std.mean():.2f}, Jacobian-regularized {j_reg.mean():.2f}")
    assert j_reg.mean() < 0.8 * j_std.mean()
    # lam = 0 adds nothing: the same weights as plain training (short run)
    a, b = _tiny(2), _tiny(2)
    train_robust(a, _loader(), mode='jacobian', lam=0.0, epochs=1, max_steps=3, seed=1, progress=False)
    train_network(b, _loader(), epochs=1, max_steps=3, seed=1, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_jacobian_regularizer_value_matches_hoffman_estimate():
    "The penalty is lam/2 · mean ‖J‖_F²; the random-projection estimate averages to the exact value."
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    x = torch.rand(3, 6, requires_grad=True)
    reg = jacobian_regularizer(lam=0.2, n_proj=2000, seed=0)
    val = reg(lin, x, None, lin(x))
    exact = 0.1 * lin.weight.pow(2).sum()                               # J = W for every input
    assert val.item() == pytest.approx(exact.item(), rel=0.05)
    val.backward()                                                      # differentiable in the weights
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0


def test_adversarial_training_raises_pgd_accuracy(net, digits):
    "Madry-style training (3-step PGD at eps 0.1 here, for speed) against the standard network: higher PGD accuracy."
    adv = _tiny()
    # 5 epochs (the standard network gets 3): with 3 the gain at eps 0.1 was 4-10 points depending on the library versions
    train_robust(adv, _loader(), mode='adversarial', dataset='digits', adv_eps=0.1, adv_iters=3, **{**TRAIN, 'epochs': 5})
    x, y = digits[0][:200], digits[1][:200]
    plan = {'pgd': dict(attack='pgd', iterations=10, eps=0.1, step=0.025)}
    a_std = robust_accuracy(net, x, y, plan, 'digits', progress=False)
    a_adv = robust_accuracy(adv, x, y, plan, 'digits', progress=False)
    print(f"PGD(10) at eps 0.1: standard {a_std['pgd']:.1f}%, adversarially trained {a_adv['pgd']:.1f}%")
    assert a_adv['pgd'] > a_std['pgd'] + 5


def test_adversary_hook_runs_in_eval_mode_inside_the_ball():
    inner = pgd_adversary(eps=0.05, iters=2, dataset='digits')
    assert inner.step == pytest.approx(0.05 / 4) and inner.iters == 2
    seen = []
    def adversary(model, x, y):
        seen.append(model.training)
        xa = inner(model, x, y)
        seen.append((xa - x).abs().max().item())
        seen.append(model.training)
        return xa
    n = _tiny(3)
    train_network(n, _loader(), epochs=1, max_steps=2, seed=0, progress=False, adversary=adversary)
    assert seen[0::3] == [False, False] and seen[2::3] == [False, False]   # eval mode during the attack
    assert all(0 < d <= 0.05 + 1e-6 for d in seen[1::3])                   # perturbed, inside the eps-ball
    assert n.training                                                      # back in training mode
    with pytest.raises(ValueError, match="adversary must return a tensor of the batch's shape"):
        train_network(_tiny(3), _loader(), epochs=1, max_steps=1, progress=False, adversary=lambda m, x, y: x[:1])
    with pytest.raises(ValueError, match='regularizer must be callable'):
        train_network(_tiny(3), _loader(), epochs=1, max_steps=1, progress=False, regularizer=3)


# --- 4. certified bounds ---------------------------------------------------------------------------------------------

def test_mean_certified_bound_on_evaluation_network(net, radii):
    "The evaluation network (auxiliary head, drop-path > 0, training mode) is bounded in eval mode; its mode is kept."
    x, y, r, ok = radii
    net.train()
    assert net.drop_path_prob > 0
    per = mean_certified_bound(net, x, y, 'linf', rtol=0.01, batch_size=16, reduction='none')
    assert net.training
    assert torch.allclose(per, r['linf'])                                # chunking changes nothing
    m = mean_certified_bound(net, x, y, 'linf', rtol=0.01)
    assert m == pytest.approx(r['linf'].mean().item()) and m > 0
    wrong = _pred(net, x) != y
    assert (per[wrong] == 0).all()                                       # misclassified inputs count as 0
    mc = mean_certified_bound(net, x, y, 'linf', rtol=0.01, correct_only=True)
    assert mc == pytest.approx(r['linf'][~wrong].mean().item()) and mc >= m


# --- 5. errors -------------------------------------------------------------------------------------------------------

def test_errors_name_the_bad_value(net, digits):
    x, y = digits[0][:4], digits[1][:4]
    cases = [
        (lambda: make_attack('pgd7', net), r"unknown attack 'pgd7'.*pgd10, pgd20, pgd100, pgd, fgsm, cw"),
        (lambda: make_attack('pgd', net, 'svhn'), r"unknown dataset 'svhn'.*cifar10, imagenet, mnist, objects10, digits"),
        (lambda: make_attack('pgd', net, eps=1.5), r"eps = 1.5 is outside \[0, 1\]"),
        (lambda: make_attack('pgd', net, eps=-0.1), r"eps must be >= 0, got -0.1"),
        (lambda: make_attack('pgd_l2', net, eps=-2.0), r"eps must be >= 0, got -2.0"),
        (lambda: make_attack('fgsm', net, eps=float('nan')), r"eps must be a finite number, got nan"),
        (lambda: make_attack('pgd', net, iterations=0), r"iterations must be an int >= 1, got 0"),
        (lambda: make_attack('pgd', net, iterations=2.5), r"iterations must be an int >= 1, got 2.5"),
        (lambda: make_attack('pgd10', net, iterations=5), r"'pgd10' takes no iterations argument \(got 5\)"),
        (lambda: make_attack('cw', net, eps=0.1), r"'cw' is a minimum-norm attack and takes no eps \(got 0.1\)"),
        (lambda: make_attack('pgd', net, step=0.0), r"step must be a finite number > 0, got 0.0"),
        (lambda: make_attack('autoattack_linf', net, autoattack='full'), r"unknown AutoAttack variant 'full'"),
        (lambda: robust_accuracy(net, x * 2, y, ['fgsm'], 'digits'), r"inputs must lie in \[0, 1\].*got values in \[0, 2\]"),
        (lambda: robust_accuracy(net, x - 0.5, y, ['fgsm'], 'digits'), r"got values in \[-0.5, 0.5\]"),
        (lambda: robust_accuracy(net, x, y, ['fgsm', 'deepfool'], 'digits'), r"unknown attack 'deepfool'"),
        (lambda: robust_accuracy(net, x, y, ['fgsm'], 'cifar100'), r"unknown dataset 'cifar100'"),
        (lambda: robust_accuracy(net, x, y[:3], ['fgsm'], 'digits'), r"labels must be an int tensor of shape \(4,\), got \(3,\)"),
        (lambda: robust_accuracy(net, x, y + 10, ['fgsm'], 'digits'), r"label 1\d is out of range"),
        (lambda: robust_accuracy(net, x, y, ['fgsm'], 'digits', batch_size=0), r"batch_size must be an int >= 1, got 0"),
        (lambda: robust_accuracy(net, x, y, {'a': dict(attack='pgd', iterations=-1)}, 'digits'), r"iterations must be an int >= 1, got -1"),
        (lambda: pgd_curve(net, x, y, iterations=(5, 0), dataset='digits'), r"iterations must be an int >= 1, got 0"),
        (lambda: jacobian_regularizer(lam=-1.0), r"lam must be a finite number >= 0, got -1.0"),
        (lambda: jacobian_regularizer(n_proj=0), r"n_proj must be an int >= 1, got 0"),
        (lambda: pgd_adversary(eps=2.0), r"eps = 2.0 is outside \[0, 1\]"),
        (lambda: pgd_adversary(iters=0), r"iters must be an int >= 1, got 0"),
        (lambda: train_robust(net, None, mode='trades'), r"unknown training mode 'trades'.*jacobian, adversarial, standard"),
        (lambda: train_robust(net, None, mode='standard', lam=0.1), r"lam and n_proj apply to mode 'jacobian', not 'standard'"),
        (lambda: mean_certified_bound(net, x, y, reduction='sum'), r"reduction must be 'mean' or 'none', got 'sum'"),
        (lambda: Normalized(net, [0.5, 0.5], [0.2]), r"got 2 and 1"),
        (lambda: Normalized(net, [0.5], [0.0]), r"std must be > 0 in every channel, got \[0.0\]"),
        (lambda: check_images(x[0]), r"inputs must be a float tensor \(N, C, H, W\), got \(1, 8, 8\)"),
    ]
    for fn, pattern in cases:
        with pytest.raises(ValueError, match=pattern): fn()
    assert net.training
