"Brain-tumour study (§4.6): the explainer/audience chain's hypergradient, the baselines, the runs, bad input."
import pytest
import torch

from trustnas_nb.mlo import hypergradient
from trustnas_nb.brain import (BRAIN_BASELINES, BRAIN_CLASSES, baseline_model, tiny_brain_chain, manual_brain_alpha_gradient,
                               per_class_accuracy, class_counts, brain_run, baseline_run, brain_label)
from trustnas_nb.evalnet import count_parameters

torch.set_num_threads(1)


def rel(a, b):
    return float(torch.cat([(a[k] - b[k]).flatten() for k in a]).norm() / torch.cat([b[k].flatten() for k in b]).norm())


def norm(g):
    return float(torch.cat([v.flatten() for v in g.values()]).norm())


def _setup(**kw):
    chain, tr, va = tiny_brain_chain(**kw)
    chain.table.load(chain.d, tr[2])
    return chain, tr, va, {'w1': tr, 'delta': tr, 'w2': tr, 'alpha': va}


@pytest.mark.parametrize('eia', [True, False])
def test_audience_chain_hypergradient_is_exact(eia):
    "Eqs. (1)-(4) by hand (float64, audience = a small CNN) = the engine's exact hypergradient; finite differences agree."
    chain, tr, va, B = _setup(explainer_in_alpha=eia)
    man = manual_brain_alpha_gradient(chain, tr, va)
    assert norm(man) > 1e-8
    assert rel(hypergradient(chain.levels, 'alpha', B, method='exact'), man) < 1e-10
    assert rel(hypergradient(chain.levels, 'alpha', B, method='finite_difference', fd_eps=1e-5), man) < 1e-6


def test_audience_only_gradient_flows_only_through_delta():
    "explainer_in_alpha=False: no direct gradient of A; cutting δ' → W2' leaves nothing; with the explainer it does not vanish."
    chain, tr, va, B = _setup(explainer_in_alpha=False)
    assert norm(hypergradient(chain.levels, 'alpha', B, method='first_order')) == 0.0
    assert norm(manual_brain_alpha_gradient(chain, tr, va, through_delta=False)) == 0.0
    assert norm(manual_brain_alpha_gradient(chain, tr, va)) > 1e-8
    chain, tr, va, B = _setup(explainer_in_alpha=True)
    assert norm(hypergradient(chain.levels, 'alpha', B, method='first_order')) > 1e-6
    assert norm(manual_brain_alpha_gradient(chain, tr, va, through_delta=False)) > 1e-6


def test_gamma_weights_the_explainer_term():
    "A's objective = L_val(audience) + γ L_val(explainer): the hypergradient is affine in γ."
    gs = {}
    for g in (0.0, 1.0, 2.0):
        chain, tr, va, B = _setup(gamma=g)
        gs[g] = hypergradient(chain.levels, 'alpha', B, method='exact')
    for k in gs[0]: assert torch.allclose(gs[2][k] - gs[1][k], gs[1][k] - gs[0][k], atol=1e-12)
    chain, tr, va, B = _setup(explainer_in_alpha=False)
    g_off = hypergradient(chain.levels, 'alpha', B, method='exact')
    for k in gs[0]: assert torch.allclose(g_off[k], gs[0][k], atol=1e-12)       # γ = 0 is "audience only"


def test_real_audience_builds_the_chain():
    "The torchvision audience at a tiny size: W2 are its parameters, no direct gradient of A without the explainer."
    chain, tr, va, B = _setup(explainer_in_alpha=False, audience='resnet18', dtype=torch.float32, size=8)
    assert set(chain.levels[2].named) == {n for n, _ in chain.net2.named_parameters()}
    assert norm(hypergradient(chain.levels, 'alpha', B, method='first_order')) == 0.0
    info = chain.step(tr, va)
    assert set(info['updated']) == {'alpha', 'w1', 'delta', 'w2'}


@pytest.mark.parametrize('name', list(BRAIN_BASELINES))
def test_baselines_forward_16x16_one_channel(name):
    m = baseline_model(name, 1, 4).eval()
    with torch.no_grad(): out = m(torch.rand(2, 1, 16, 16))
    assert out.shape == (2, 4) and torch.isfinite(out).all()


def test_baseline_parameter_counts_match_torchvision():
    import torchvision
    assert count_parameters(baseline_model('resnet50', 3, 1000)) == count_parameters(torchvision.models.resnet50()) == 25_557_032
    assert count_parameters(baseline_model('resnet101', 3, 1000)) == count_parameters(torchvision.models.resnet101()) == 44_549_160
    for name, bc in (('densenet40', (6, 6, 6)), ('densenet101', (16, 16, 16))):
        ref = torchvision.models.DenseNet(growth_rate=12, block_config=bc, num_init_features=24, num_classes=1000)
        assert count_parameters(baseline_model(name, 3, 1000)) == count_parameters(ref)
    for d in (13, 16):   # VGG: torchvision's convolutional features, then global average pooling and one linear layer
        feats = count_parameters(getattr(torchvision.models, f'vgg{d}_bn')().features)
        assert count_parameters(baseline_model(f'vgg{d}', 3, 1000)) == feats + 512 * 1000 + 1000
    # the 1-channel stem changes the first convolution only
    r1, r3 = baseline_model('resnet50', 1, 4), baseline_model('resnet50', 3, 4)
    assert count_parameters(r3) - count_parameters(r1) == 64 * 7 * 7 * 2


def test_bad_names_raise_naming_the_value():
    with pytest.raises(ValueError, match='resnet18x'): baseline_model('resnet18x')
    with pytest.raises(ValueError, match="'alexnet'"): baseline_run('alexnet', 0, 'ci')
    with pytest.raises(ValueError, match="'lenet'"): brain_run('darts2nd', 'sanas', 0, 'ci', audience='lenet')
    with pytest.raises(ValueError, match="'ec'"): brain_run('darts2nd', 'ec', 0, 'ci')
    with pytest.raises(ValueError, match="'nasnet'"): brain_run('nasnet', 'plain', 0, 'ci')
    with pytest.raises(ValueError, match='in_channels'): baseline_model('vgg13', 0)
    with pytest.raises(ValueError, match="'mlp'"): tiny_brain_chain(audience='mlp')
    with pytest.raises(ValueError, match='sanas settings'): brain_run('darts2nd', 'plain', 0, 'ci', sanas=dict(eps=0.1))


def test_per_class_accuracy_and_counts():
    class Const(torch.nn.Module):
        def forward(self, x): return torch.tensor([[0., 5., 0., 0.]]).expand(len(x), 4)
    y = torch.tensor([0, 1, 1, 2])
    r = per_class_accuracy(Const(), torch.zeros(4, 1, 4, 4), y)
    assert r['per_class']['meningioma'] == 100.0 and r['per_class']['glioma'] == 0.0
    assert r['per_class']['pituitary'] != r['per_class']['pituitary']                    # no test image: NaN
    assert r['confusion'][1][1] == 2 and sum(map(sum, r['confusion'])) == 4
    t = class_counts('brain_mri', image_size=8)
    assert list(t.tumor_type) == ['Glioma', 'Meningioma', 'Healthy', 'Pituitary']
    assert t.train_images.sum() + t.test_images.sum() == 1200
    assert t.set_index('tumor_type').loc['Healthy', 'train_images'] < t.set_index('tumor_type').loc['Glioma', 'train_images']


SEARCH = dict(n_train=32, n_val=32, batch_size=16, max_steps=1, C=4, layers=3, nodes=2)
EVAL = dict(C=4, layers=3, epochs=2, n_train=64, n_test=32, max_steps=1, auxiliary=False, drop_path=0.0, batch_size=32)


@pytest.mark.parametrize('base,audience,eia', [('darts2nd', 'resnet18', True), ('pdarts', 'vgg13', False), ('pcdarts', 'resnet18', True)])
def test_brain_run_rows_and_curves(tmp_path, base, audience, eia):
    row, curve, net, res = brain_run(base, 'sanas', 0, 'ci', gamma=0.5, audience=audience, explainer_in_alpha=eia, image_size=16,
                                     search_image_size=8, cache_dir=tmp_path, search_overrides=SEARCH, eval_overrides=EVAL)
    assert row['method'] == brain_label(base, 'sanas') and row['audience'] == audience and row['gamma'] == 0.5
    assert row['arch_objective'] == ('audience+explainer' if eia else 'audience')
    assert 0 <= row['accuracy'] <= 100 and row['params_m'] > 0 and len(curve) == 2
    assert set(f'acc_{c}' for c in BRAIN_CLASSES) <= set(row)
    row2, _, _, _ = brain_run(base, 'sanas', 0, 'ci', gamma=0.5, audience=audience, explainer_in_alpha=eia, image_size=16,
                              search_image_size=8, cache_dir=tmp_path, search_overrides=SEARCH, eval_overrides=EVAL)
    assert row2['accuracy'] == row['accuracy'] and row2['genotype'] == row['genotype']   # memoized


def test_baseline_run(tmp_path):
    row, curve, m = baseline_run('densenet40', 0, 'ci', image_size=16, cache_dir=tmp_path, eval_overrides=EVAL)
    assert row['method'] == 'DenseNet40' and row['kind'] == 'baseline' and len(curve) == 2 and 0 <= row['accuracy'] <= 100
    assert abs(row['params_m'] - count_parameters(baseline_model('densenet40')) / 1e6) < 1e-9
