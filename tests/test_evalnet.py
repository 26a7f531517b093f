"Evaluation network: published parameter counts, shapes, auxiliary head, drop-path, training loop, determinism."
import math
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from trustnas_nb.evalnet import (NetworkCIFAR, NetworkImageNet, NetworkNB201, NetworkOutput, AuxiliaryHead, Cell, Cutout,
                                 build_network, count_parameters, drop_path, evaluate, set_drop_path, split_output,
                                 train_network)
from trustnas_nb.genotypes import GENOTYPES, Genotype, GenotypeError, format_genotype

torch.set_num_threads(1)


# --- parameter counts against the published numbers ------------------------------------------------------------------

def _sig2(n): return float(f'{n / 1e6:.2g}')

@pytest.mark.parametrize('name, style, C, layers, classes, published', [
    ('DARTS_V2', 'cifar', 36, 20, 10, 3.3),
    ('PC_DARTS_cifar', 'cifar', 36, 20, 10, 3.6),
    ('PC_DARTS_image', 'imagenet', 48, 14, 1000, 5.3),
    ('PDARTS', 'cifar', 36, 20, 10, 3.4),
])
def test_published_parameter_counts(name, style, C, layers, classes, published):
    net = build_network(name, style=style, C=C, layers=layers, num_classes=classes, auxiliary=True)
    n = count_parameters(net)
    print(f'{name}: {n} parameters ({n / 1e6:.6f}M), published {published}M')
    assert _sig2(n) == published
    assert count_parameters(net, exclude_auxiliary=False) > n      # the auxiliary head exists but is not counted


def test_darts_v2_exact_count_of_reference_code():
    assert count_parameters(NetworkCIFAR(36, 10, 20, GENOTYPES['DARTS_V2'], auxiliary=True)) == 3_349_342


# --- forward passes --------------------------------------------------------------------------------------------------

def test_cifar_shapes_reductions_and_aux():
    torch.manual_seed(0)
    net = build_network('PC_DARTS_cifar', 'cifar', C=4, layers=6, auxiliary=True)
    red = [c.reduction for c in net.cells]
    assert red == [False, False, True, False, True, False]            # layers//3 and 2*layers//3
    x = torch.randn(3, 3, 32, 32)
    out = net.train()(x)
    assert isinstance(out, NetworkOutput) and out.logits.shape == (3, 10) and out.aux_logits.shape == (3, 10)
    y = net.eval()(x)
    assert isinstance(y, torch.Tensor) and y.shape == (3, 10)
    assert split_output(y)[1] is None and split_output(out)[1] is out.aux_logits
    plain = build_network('PC_DARTS_cifar', 'cifar', C=4, layers=6, auxiliary=False)
    assert isinstance(plain.train()(x), torch.Tensor)                 # no aux head: always plain logits


@pytest.mark.parametrize('size', [32, 64])
def test_imagenet_shapes_small_resolution(size):
    torch.manual_seed(0)
    net = build_network('PC_DARTS_image', 'imagenet', C=8, layers=3, num_classes=5, auxiliary=True)
    out = net.train()(torch.randn(2, 3, size, size))
    assert out.logits.shape == (2, 5) and out.aux_logits.shape == (2, 5)
    assert net.eval()(torch.randn(2, 3, size, size)).shape == (2, 5)


def test_small_inputs_and_channels():
    net = build_network('DARTS_V1', 'cifar', C=4, layers=3, num_classes=7, auxiliary=True, in_channels=1)
    out = net.train()(torch.randn(2, 1, 16, 16))                      # aux head at 4x4: adaptive pooling
    assert out.logits.shape == out.aux_logits.shape == (2, 7)


def test_aux_head_native_sizes_and_strict_mode():
    for style, native in (('cifar', 8), ('imagenet', 7)):
        h = AuxiliaryHead(12, 3, style)
        assert h(torch.randn(2, 12, native, native)).shape == (2, 3)
        assert h(torch.randn(2, 12, 5, 5)).shape == (2, 3)
        with pytest.raises(ValueError, match=f'expects a {native}x{native} input'):
            AuxiliaryHead(12, 3, style, adaptive=False)(torch.randn(2, 12, 4, 4))
    # at the native size the reference pooling (5x5, stride 3) is used, not the adaptive 4x4 one
    h = AuxiliaryHead(4, 2, 'cifar').eval(); x = torch.randn(1, 4, 8, 8)
    ref = F.avg_pool2d(F.relu(x), 5, stride=3)
    assert torch.allclose(h.classifier(h.features(ref).flatten(1)), h(x))


def test_build_network_inputs_and_errors():
    text = format_genotype(GENOTYPES['DARTS_V2'])
    a, b = build_network(text, C=4, layers=3), build_network('DARTS_V2', C=4, layers=3)
    assert count_parameters(a) == count_parameters(b) and a.genotype == GENOTYPES['DARTS_V2']
    with pytest.raises(ValueError, match='unknown network style'): build_network('DARTS_V2', style='resnet')
    with pytest.raises(GenotypeError, match="style='nb201'"): build_network('|nor_conv_3x3~0|+|none~0|none~1|', 'cifar', C=4, layers=3)
    with pytest.raises(GenotypeError): build_network("Genotype(normal=[('sep_conv_9x9', 0)])")
    with pytest.raises(ValueError, match='even C'): NetworkImageNet(7, 10, 3, 'DARTS_V2')
    with pytest.raises(ValueError, match='layers must be'): NetworkCIFAR(4, 10, 0, 'DARTS_V2')


def test_nb201_network():
    net = build_network('|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|',
                        'nb201', C=4, layers=1, num_classes=3)
    assert isinstance(net, NetworkNB201) and net.eval()(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    none_cell = build_network('|none~0|+|none~0|none~1|+|none~0|none~1|none~2|', 'nb201', C=4, layers=1)
    assert count_parameters(none_cell) < count_parameters(net)


# --- drop-path -------------------------------------------------------------------------------------------------------

def test_drop_path_function():
    x = torch.ones(4000, 1, 2, 2)
    y = drop_path(x, 0.25)
    assert abs((y[:, 0, 0, 0] == 0).float().mean().item() - 0.25) < 0.03
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.75))
    assert drop_path(x, 0.25, training=False) is x and drop_path(x, 0.0) is x
    with pytest.raises(ValueError): drop_path(x, 1.0)


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    net = build_network('DARTS_V2', 'cifar', C=4, layers=3)
    x = torch.randn(8, 3, 16, 16)
    set_drop_path(net, 0.0); net.train()
    torch.manual_seed(1); a = net(x)
    torch.manual_seed(2); b = net(x)
    assert torch.equal(a, b)                                          # train mode, p = 0: deterministic
    set_drop_path(net, 0.5)
    torch.manual_seed(1); c = net(x)
    torch.manual_seed(2); d = net(x)
    assert not torch.allclose(c, d)                                   # train mode, p > 0: random masks
    net.eval(); e = net(x); set_drop_path(net, 0.0); f = net(x)
    assert torch.equal(e, f)                                          # eval mode: p has no effect
    with pytest.raises(ValueError): set_drop_path(net, 1.0)


def test_identity_edges_never_dropped():
    skip = Genotype([('skip_connect', 0), ('skip_connect', 1)] * 4, [2, 3, 4, 5],
                    [('max_pool_3x3', 0), ('max_pool_3x3', 1)] * 4, [2, 3, 4, 5])
    cell = Cell(skip, 4, 4, 4, reduction=False, reduction_prev=False).train()
    s0, s1 = torch.randn(16, 4, 6, 6), torch.randn(16, 4, 6, 6)
    assert torch.equal(cell(s0, s1, 0.9), cell(s0, s1, 0.0))
    conv = Genotype([('sep_conv_3x3', 0), ('sep_conv_3x3', 1)] * 4, [2, 3, 4, 5], skip.reduce, [2, 3, 4, 5])
    cell = Cell(conv, 4, 4, 4, reduction=False, reduction_prev=False).train()
    torch.manual_seed(0)
    assert not torch.allclose(cell(s0, s1, 0.9), cell(s0, s1, 0.0))


# --- cutout ----------------------------------------------------------------------------------------------------------

def test_cutout():
    x = torch.ones(50, 3, 12, 12)
    y = Cutout(4, torch.Generator().manual_seed(0))(x)
    zeros = (y == 0).sum(dim=(1, 2, 3)) / 3
    assert y.shape == x.shape and (zeros <= 16).all() and (zeros >= 4).all() and (zeros == 16).any()
    assert torch.equal((y == 0).any(1), (y == 0).all(1))              # same square in every channel
    assert torch.equal(y, Cutout(4, torch.Generator().manual_seed(0))(x))
    assert Cutout(4)(torch.ones(3, 8, 8)).shape == (3, 8, 8) and Cutout(0)(x) is x
    with pytest.raises(ValueError): Cutout(-1)
    with pytest.raises(ValueError): Cutout(2)(torch.ones(8, 8))


# --- training --------------------------------------------------------------------------------------------------------

def _digits_loaders(n_train=320, n_test=200, size=16):
    from sklearn.datasets import load_digits
    d = load_digits()
    X = F.interpolate(torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0, size=size, mode='bilinear',
                      align_corners=False).repeat(1, 3, 1, 1)
    Y = torch.tensor(d.target)
    perm = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:n_train], perm[n_train:n_train + n_test]
    return (DataLoader(TensorDataset(X[tr], Y[tr]), batch_size=32, shuffle=True),
            DataLoader(TensorDataset(X[te], Y[te]), batch_size=100))


def _run(seed, epochs=2, **kw):
    torch.manual_seed(123)                                            # same init for every run
    net = build_network('DARTS_V2', 'cifar', C=4, layers=4, auxiliary=True)   # N R R N: the last cell is a normal one
    tr, te = _digits_loaders()
    hist = train_network(net, tr, te, epochs=epochs, lr=0.05, drop_path_prob=0.2, cutout=4, seed=seed, progress=False, **kw)
    return net, hist, te


def test_training_reduces_loss_and_logs():
    net, hist, te = _run(0)
    assert list(hist.columns) == ['epoch', 'train_loss', 'train_acc', 'test_loss', 'test_acc', 'lr', 'drop_path_prob', 'seconds']
    assert hist.epoch.tolist() == [1, 2]
    assert hist.train_loss.iloc[1] < hist.train_loss.iloc[0] < math.log(10) + 0.5
    assert hist.train_acc.iloc[1] > 0.2                               # well above chance (0.1) after 2 short epochs
    assert hist.lr.tolist() == pytest.approx([0.05, 0.025])           # cosine over 2 epochs
    assert hist.drop_path_prob.tolist() == pytest.approx([0.0, 0.1])  # linear schedule p*e/E
    loss, acc = evaluate(net, te)
    assert loss == pytest.approx(hist.test_loss.iloc[-1]) and acc == pytest.approx(hist.test_acc.iloc[-1]) and 0 <= acc <= 1


def test_training_is_deterministic_with_seed():
    n1, h1, _ = _run(7, epochs=1, max_steps=4)
    n2, h2, _ = _run(7, epochs=1, max_steps=4)
    n3, h3, _ = _run(8, epochs=1, max_steps=4)
    cols = ['train_loss', 'train_acc', 'test_loss', 'test_acc']
    assert h1[cols].equals(h2[cols])
    assert all(torch.equal(a, b) for a, b in zip(n1.state_dict().values(), n2.state_dict().values()))
    assert not h1.train_loss.equals(h3.train_loss)


def test_train_network_validates_arguments():
    net = build_network('DARTS_V2', 'cifar', C=4, layers=3)
    tr, _ = _digits_loaders(64, 10)
    with pytest.raises(ValueError, match='epochs'): train_network(net, tr, epochs=0)
    with pytest.raises(ValueError, match='drop_path_prob'): train_network(net, tr, epochs=1, drop_path_prob=1.5)
    hist = train_network(net, tr, None, epochs=1, max_steps=1, progress=False)
    assert math.isnan(hist.test_acc.iloc[0])


def test_random_crop_flip_is_the_cifar_augmentation():
    from trustnas_nb.evalnet import random_crop_flip
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    a = random_crop_flip(x, 4, torch.Generator().manual_seed(0)); b = random_crop_flip(x, 4, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    outs = [random_crop_flip(x[:1], 0, torch.Generator().manual_seed(s)) for s in range(20)]   # pad 0: only flips
    assert any(torch.equal(o, x[:1]) for o in outs) and any(torch.equal(o, x[:1].flip(-1)) for o in outs)
    assert all(torch.equal(o, x[:1]) or torch.equal(o, x[:1].flip(-1)) for o in outs)
