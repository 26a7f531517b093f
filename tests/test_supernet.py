"Tests of trustnas_nb.supernet: the DARTS-family supernet and its PC-DARTS / P-DARTS / PR-DARTS / SDARTS options."
import copy
import pytest
import torch
import torch.nn.functional as F
from trustnas_nb.ops import get_space, uniform_space
from trustnas_nb.supernet import (SuperNet, build_supernet, compare_with_reference, pdarts_prune, pdarts_skip_dropout,
                                  hc_temperature, sdarts_epsilon, perturb_alpha_random, perturb_alpha_adv, MixedOp,
                                  channel_shuffle)

pytestmark = pytest.mark.usefixtures('one_thread')

SPACES = ('darts', 's1', 's2', 's3', 's4', 'nb201')
OPTIONS = {
    'darts': {},
    'pc': dict(pc_k=2, edge_norm=True),
    'pc4': dict(pc_k=4),
    'gates': dict(gates='hard_concrete', temperature=0.5),
    'gates_topk': dict(gates='hard_concrete', gate_topk=1, temperature=0.5),
    'skipdrop': dict(skip_dropout=0.3),
    'nchw': dict(channels_last=False),
}

def small(space='darts', seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault('C', 8)
    kw.setdefault('layers', 3 if get_space(space).n_inputs == 2 else 5)
    return build_supernet(space, **kw)

def batch(n=3, hw=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, hw, hw, generator=g), torch.randint(0, 10, (n,), generator=g)

@pytest.mark.parametrize('space', SPACES)
@pytest.mark.parametrize('opt', list(OPTIONS))
def test_forward_shapes(space, opt):
    net = small(space, **OPTIONS[opt])
    x, y = batch()
    assert net(x).shape == (3, 10)
    net.loss(x, y).backward()
    assert all(p.grad is not None for p in net.arch_parameters())
    sp = net.space
    assert net.alpha_normal.shape == (sp.n_edges, len(sp.ops()[0]))
    assert ('reduce' in net.cell_kinds) == (sp.n_inputs == 2)

def test_nb201_skeleton():
    net = small('nb201', layers=8)          # 2 + 2 + 2 search cells around two residual blocks
    kinds = [type(c).__name__ for c in net.cells]
    assert kinds.count('ResBlock') == 2 and kinds.count('SearchCell') == 6
    assert not hasattr(net, 'alpha_reduce')
    g = net.genotype()
    assert len(g.normal) == 6 and g.normal_concat == [3]

def test_pc_k1_equals_darts():
    for cl in (True, False):
        d = small('darts', channels_last=cl)
        p = small('darts', pc_k=1, seed=5, channels_last=cl)
        p.load_state_dict(d.state_dict())
        x, _ = batch()
        assert torch.equal(d(x), p(x))
        # and the reference path of both
        d.fast = p.fast = False
        assert torch.equal(d(x), p(x))

def test_mixedop_pc_reference_formula():
    "PC-DARTS' mixed op: mixture on the first C/K channels, bypass, concat, channel shuffle."
    torch.manual_seed(0)
    m = MixedOp(8, 1, ('skip_connect', 'avg_pool_3x3'), pc_k=4).eval()
    x = torch.randn(2, 8, 5, 5)
    w = torch.tensor([0.3, 0.7])
    mix = 0.3 * x[:, :2] + 0.7 * m.ops['avg_pool_3x3'](x[:, :2])
    expect = torch.cat([mix, x[:, 2:]], 1).view(2, 4, 2, 5, 5).transpose(1, 2).reshape(2, 8, 5, 5)
    assert torch.allclose(m(x, w), expect, atol=1e-6)
    assert torch.equal(channel_shuffle(x, 1), x)

CASES = [('darts', {}), ('darts', dict(pc_k=4, edge_norm=True)), ('darts', dict(channels_last=False)),
         ('darts', dict(skip_dropout=0.5)), ('s1', {}), ('s3', dict(pc_k=2)), ('s4', {}), ('nb201', {}),
         ('nb201', dict(pc_k=2, edge_norm=True)), ('darts', dict(gates='hard_concrete', temperature=0.3)),
         ('s3', dict(gates='hard_concrete', gate_topk=2)), ('darts', dict(n_nodes=3))]

@pytest.mark.parametrize('space,kw', CASES)
def test_fast_equals_reference(space, kw):
    net = small(space, **kw)
    x, _ = batch(hw=12)
    d = compare_with_reference(net, x, seed=3)
    assert d['output'] < 1e-5 and d['grad_rel'] < 1e-5, d
    if kw.get('gates') is None: assert d['buffers'] < 1e-5, d      # gates skip zero-gated ops' BN updates
    net.eval()
    d = compare_with_reference(net, x, seed=3)
    assert d['output'] < 2e-5 and d['grad_rel'] < 1e-5 and d['buffers'] == 0, d

def test_fast_equals_reference_fixed_bn_and_perturbed():
    net = small('darts')
    x, y = batch(hw=12)
    net(x)                                 # non-trivial running statistics
    net.freeze_bn_stats()
    d = compare_with_reference(net, x)
    assert d['output'] < 1e-5 and d['grad_rel'] < 1e-5 and d['buffers'] == 0
    delta = perturb_alpha_random(net, 0.3, generator=torch.Generator().manual_seed(0))
    with net.perturbed(delta):
        ref = copy.deepcopy(net); ref.fast = False
        assert (net(x) - ref(x)).abs().max() < 1e-5

def test_double_backward_matches_reference():
    "The exact unroll differentiates a weight gradient w.r.t. α: second order must agree between the two paths."
    net = small('darts', pc_k=2, edge_norm=True)
    x, y = batch(hw=8)
    res = []
    for fast in (True, False):
        net.fast = fast
        torch.manual_seed(0)
        gw = torch.autograd.grad(net.loss(x, y), net.weights(), create_graph=True)
        v = [torch.ones_like(g) for g in gw]
        hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(gw, v)), net.arch_parameters())
        res.append(hv)
    for a, b in zip(*res): assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)
    assert any(h.abs().sum() > 0 for h in res[0])

def test_parameter_groups_partition():
    for kw in ({}, dict(edge_norm=True, pc_k=2), dict(gates='hard_concrete')):
        net = small('darts', **kw)
        a, w = {id(p) for p in net.arch_parameters()}, {id(p) for p in net.weights()}
        assert not a & w and a | w == {id(p) for p in net.parameters()}
        names = dict(net.named_parameters())
        for n, p in net.named_arch_parameters(): assert names[n] is p
        for n, p in net.named_weights(): assert names[n] is p
        expect = {'alpha_normal', 'alpha_reduce'} | ({'beta_normal', 'beta_reduce'} if kw.get('edge_norm') else set())
        assert {n for n, _ in net.named_arch_parameters()} == expect

def test_functional_call_substitutes_alphas():
    net = small('darts', edge_norm=True).eval()
    x, _ = batch()
    base = net(x)
    new = {'alpha_normal': torch.randn_like(net.alpha_normal) * 3, 'beta_reduce': torch.randn_like(net.beta_reduce)}
    out = torch.func.functional_call(net, new, (x,))
    assert not torch.allclose(out, base, atol=1e-4)
    twin = copy.deepcopy(net)
    with torch.no_grad():
        for k, v in new.items(): getattr(twin, k).copy_(v)
    assert torch.allclose(out, twin(x), atol=1e-6)
    assert torch.equal(net(x), base)                               # the module itself is untouched
    # gradients flow to substituted (non-leaf) alphas: what an unrolled hypergradient needs
    a = net.alpha_normal.detach().clone().requires_grad_()
    g, = torch.autograd.grad(torch.func.functional_call(net, {'alpha_normal': a * 2}, (x,)).sum(), a)
    assert g.abs().sum() > 0

def test_weights_override_and_zero_op_skipped():
    "A space of only 'none' and one conv: the output depends on the conv's weight, not on the zero op's."
    sp = uniform_space('z', ('none', 'sep_conv_3x3'))
    net = small(sp)
    x, _ = batch()
    g = torch.Generator().manual_seed(0)
    b1, b2 = torch.rand(sp.n_edges, generator=g), torch.rand(sp.n_edges, generator=g)
    def W(a, b): return {k: torch.stack([torch.full_like(b, a), b], 1) for k in net.cell_kinds}
    o1, o2 = net(x, W(0.9, b1)), net(x, W(0.1, b1))
    assert torch.allclose(o1, o2, atol=1e-6)
    assert not torch.allclose(net(x, W(0.1, b2)), o2, atol=1e-3)
    ref = copy.deepcopy(net); ref.fast = False
    assert torch.allclose(ref(x, W(0.9, b1)), o1, atol=1e-5)
    # every zero op is skipped: the fast path never calls a Zero module
    calls = []
    for m in list(net.modules()) + list(ref.modules()):
        if type(m).__name__ == 'Zero': m.register_forward_hook(lambda *a: calls.append(1))
    net(x); assert not calls
    ref(x); assert calls
    # through the softmax the zero op still matters (normalisation)
    out_a = net(x)
    with torch.no_grad(): net.alpha_normal[:, 0] += 2.0
    assert not torch.allclose(net(x), out_a, atol=1e-5)
    # weights of the wrong shape are refused
    with pytest.raises(ValueError, match='shape'): net(x, {k: torch.ones(3, 2) for k in net.cell_kinds})
    with pytest.raises(ValueError, match='lacks'): net(x, {'normal': W(0.5, b1)['normal']})

def test_fixed_bn_mode():
    net = small('darts', pc_k=2)
    x, _ = batch()
    net(x)
    stats = {k: v.clone() for k, v in net.state_dict().items() if 'running' in k or 'num_batches' in k}
    net.freeze_bn_stats(); net.train(); net(x); net.eval(); net.train(); net(x)
    assert all(torch.equal(stats[k], v) for k, v in net.state_dict().items() if k in stats)
    assert net.training and all(not m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    net.unfreeze_bn_stats(); net(x)
    assert not all(torch.equal(stats[k], v) for k, v in net.state_dict().items() if k in stats)

def test_sdarts_random_perturbation_restored():
    net = small('darts').eval()
    x, y = batch()
    alphas = [p.detach().clone() for p in net.arch_parameters()]
    W0, out0 = net.op_weights('normal').detach(), net(x)
    d = perturb_alpha_random(net, 0.1, generator=torch.Generator().manual_seed(1))
    assert set(d) == {'normal', 'reduce'}
    with net.perturbed(d):
        W1 = net.op_weights('normal')
        assert torch.allclose(W1, W0 + d['normal'], atol=1e-6)
        assert (W1 >= 0).all() and torch.allclose(W1.sum(-1), torch.ones(W1.shape[0]))
        assert not torch.allclose(net(x), out0, atol=1e-6)
    assert torch.equal(net.op_weights('normal').detach(), W0) and torch.equal(net(x), out0)
    assert all(torch.equal(a, p) for a, p in zip(alphas, net.arch_parameters()))
    with pytest.raises(ValueError): 
        with net.perturbed({'normal': torch.zeros(2, 2)}): pass

def test_sdarts_adv_increases_loss_and_restores():
    net = small('darts', pc_k=2, edge_norm=True)
    x, y = batch(n=6)
    net.train()
    alphas = [p.detach().clone() for p in net.arch_parameters()]
    d = perturb_alpha_adv(net, x, y, eps=0.2, steps=3)
    assert net.training                                           # mode restored
    assert all(torch.equal(a, p) for a, p in zip(alphas, net.arch_parameters()))
    net.eval()
    with torch.no_grad():
        l0 = net.loss(x, y).item()
        with net.perturbed(d): l1 = net.loss(x, y).item()
    assert l1 >= l0 - 1e-6
    # the weight step is taken inside the block
    net.train()
    with net.perturbed(d): net.loss(x, y).backward()
    assert net.stem[0].weight.grad is not None and net.classifier.weight.grad.abs().sum() > 0

def test_sdarts_epsilon_schedule():
    assert sdarts_epsilon(0, 50) == pytest.approx(0.03) and sdarts_epsilon(50, 50) == pytest.approx(0.3)
    assert sdarts_epsilon(25, 50) == pytest.approx(0.165)

def test_hard_concrete_gates():
    net = small('darts', gates='hard_concrete', temperature=0.5)
    net.train()
    torch.manual_seed(0)
    g1, g2 = net.op_weights('normal'), net.op_weights('normal')
    for g in (g1, g2): assert ((g >= 0) & (g <= 1)).all()
    assert not torch.equal(g1, g2)                                  # stochastic in training
    with torch.no_grad(): net.alpha_normal.fill_(-20.0)
    assert net.op_weights('normal').max() == 0                     # exactly zero gates exist
    net.eval()
    e1, e2 = net.op_weights('reduce'), net.op_weights('reduce')
    assert torch.equal(e1, e2)
    lo, hi = net.hc_limits
    assert torch.allclose(e1, (torch.sigmoid(net.alpha_reduce) * (hi - lo) + lo).clamp(0, 1))
    x, _ = batch()
    assert torch.equal(net(x), net(x))
    # activation probability formula and temperature
    net.set_temperature(2.0)
    import math
    assert torch.allclose(net.activation_probs('reduce'), torch.sigmoid(net.alpha_reduce - 2.0 * math.log(0.1 / 1.1)))
    assert hc_temperature(0, 50) == 10 and hc_temperature(49, 50) == pytest.approx(0.1)
    with pytest.raises(ValueError): net.set_temperature(0)

def test_gate_topk():
    net = small('darts', gates='hard_concrete', gate_topk=2, temperature=5.0)
    g = net.op_weights('normal')
    assert ((g > 0).sum(1) <= 2).all()
    net.eval()
    assert (net.op_weights('normal') > 0).sum(1).min() > 2           # eval mode: deterministic, not truncated

def test_pr_regularizer():
    net = small('darts', gates='hard_concrete', temperature=0.1)
    t = net.pr_terms()
    t = {k: v.item() for k, v in t.items()}
    for k in ('skip', 'conv', 'free', 'path'): assert 0 <= t[k] <= 1
    R = net.pr_regularizer(0.01, 0.005, 0.005)
    assert R.item() == pytest.approx(0.01 * t['skip'] + 0.005 * (t['conv'] + t['free']) - 0.005 * t['path'], rel=1e-5)
    R.backward()
    g = net.alpha_normal.grad
    ops = net.space.ops()[0]
    assert g[:, ops.index('none')].abs().sum() == 0                  # zero op excluded from the groups
    assert (g[:, ops.index('skip_connect')] > 0).all()                # raising a skip gate raises R (penalized)
    # raising the conv gates on the deepest path lowers R: d/dα of −λ3·path < 0 there, only there
    chain = [net.space.edges.index((j, j + 1)) for j in range(1, 5)]
    sep = ops.index('sep_conv_3x3')
    assert float(g[chain[0], sep]) < float(g[0, sep])
    assert net.pr_regularizer(threshold=1.0).item() == pytest.approx(-0.005 * t['path'], rel=1e-5)
    assert net.expected_l0().item() == pytest.approx(sum(net.activation_probs(k)[:, 1:].sum().item() for k in ('normal', 'reduce')), rel=1e-5)
    with pytest.raises(ValueError): small('darts').activation_probs()

def test_pdarts_prune_keeps_top_k():
    net = small('darts')
    E, O = net.alpha_normal.shape
    torch.manual_seed(0)
    with torch.no_grad():
        net.alpha_normal.copy_(torch.randn(E, O)); net.alpha_reduce.copy_(torch.randn(E, O))
        net.alpha_normal[:, 0] = 10.0                                # 'none' strongest: still dropped first
    sp = pdarts_prune(net, 5)
    ops = net.space.ops()[0]
    for kind, a in (('normal', net.alpha_normal), ('reduce', net.alpha_reduce)):
        for e in range(E):
            kept = sp.ops(kind == 'reduce')[e]
            assert 'none' not in kept and len(kept) == 5
            order = [o for o in torch.argsort(a[e, 1:], descending=True).tolist()][:5]
            assert set(kept) == {ops[1 + o] for o in order}
            assert list(kept) == [o for o in ops if o in kept]      # original order kept
    stage2 = build_supernet(sp, C=8, layers=3, skip_dropout=0.4)
    assert stage2.alpha_normal.shape == (E, 5)
    sp3 = pdarts_prune(stage2, 3)
    assert all(len(o) == 3 for o in sp3.ops())
    x, _ = batch()
    assert build_supernet(sp3, C=8, layers=5)(x).shape == (3, 10)
    with pytest.raises(ValueError, match='cannot keep'): pdarts_prune(stage2, 6)

def test_pdarts_skip_dropout():
    net = small('darts', skip_dropout=0.4)
    drops = [op[1] for c in net.cells for m in c.edges for n, op in m.ops.items() if n == 'skip_connect' and m.stride == 1]
    assert drops and all(d.p == 0.4 for d in drops)
    net.set_skip_dropout(0.1)
    assert all(d.p == 0.1 for d in drops)
    with pytest.raises(ValueError, match='skip_dropout'): small('darts').set_skip_dropout(0.2)
    assert pdarts_skip_dropout(0.7, 0, 25, 10) == pytest.approx(0.7 * 24 / 25)
    assert pdarts_skip_dropout(0.7, 12, 25, 10) == pytest.approx(0.7 * torch.exp(torch.tensor(-0.4)).item())

def test_genotype_and_max_skips():
    from trustnas_nb.genotypes import derive_genotype
    net = small('darts', edge_norm=True)
    with torch.no_grad():
        net.alpha_normal.copy_(torch.randn_like(net.alpha_normal)); net.alpha_normal[:, 3] += 5.0   # skip everywhere
    g = net.genotype()
    assert g == derive_genotype(net.alpha_normal, net.alpha_reduce, 'darts', net.beta_normal, net.beta_reduce)
    assert sum(op == 'skip_connect' for op, _ in g.normal) == 8
    g2 = net.genotype(max_skips=2)
    assert sum(op == 'skip_connect' for op, _ in g2.normal) == 2
    assert g2.reduce == g.reduce
    g0 = net.genotype(max_skips=0)
    assert all(op != 'skip_connect' for op, _ in g0.normal)
    # gates: PR-DARTS pairs rule, may pick two operations from the same input
    pr = small('darts', gates='hard_concrete')
    with torch.no_grad():
        pr.alpha_normal.fill_(-5.0); pr.alpha_normal[0, 4] = 5.0; pr.alpha_normal[0, 5] = 4.0
    assert pr.genotype().normal[:2] == [('sep_conv_3x3', 0), ('sep_conv_5x5', 0)]

def test_bad_arguments():
    with pytest.raises(ValueError, match='gates'): build_supernet(gates='gumbel')
    with pytest.raises(ValueError, match='pc_k'): build_supernet(C=6, pc_k=4, layers=3)
    with pytest.raises(ValueError, match='skip_dropout'): build_supernet(skip_dropout=1.5)
    with pytest.raises(ValueError, match='layers'): build_supernet(layers=0)
    sp = get_space('darts').restrict([('none', 'skip_connect')] + [('skip_connect',)] * 13, get_space('darts').reduce_ops)
    with pytest.raises(ValueError, match='same number'): build_supernet(sp, C=8, layers=3)
    with pytest.raises(ValueError, match='images'): small()(torch.randn(3, 8, 8))

def test_tracing_tools():
    net = small('darts', C=4).eval()
    x, _ = batch(n=2)
    with torch.no_grad(): ep = torch.export.export(net, (x,))
    assert torch.allclose(ep.module()(x), net(x), atol=1e-6)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)      # functorch's notice about ops without a batching rule
        J = torch.func.jacrev(lambda inp: net(inp.unsqueeze(0)).squeeze(0))(x[0])
        ref = copy.deepcopy(net); ref.fast = False
        Jr = torch.func.jacrev(lambda inp: ref(inp.unsqueeze(0)).squeeze(0))(x[0])
        assert J.shape == (10, 3, 8, 8) and torch.allclose(J, Jr, atol=1e-5)
        assert torch.allclose(torch.func.vmap(lambda inp: net(inp.unsqueeze(0)).squeeze(0))(x), net(x), atol=1e-5)

def test_bn_mode_fixed_constructor():
    net = small('darts', bn_mode='fixed')
    assert net.bn_mode == 'fixed' and net.training
    assert all(not m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match='bn_mode'): small('darts', bn_mode='frozen')
