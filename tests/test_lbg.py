"LBG / DALBG (thesis ch.2): the three-level chain's hypergradient, K = 1, group routing, C's rows."
import pytest
import torch
from torch import nn
from trustnas_nb.lbg import LBGChain, tiny_lbg, manual_c_gradient, group_probs


@pytest.mark.parametrize('lam', [0.0, 0.1])
def test_c_hypergradient_matches_eqs_2_11_to_2_14_by_hand(lam):
    "The engine's exact hypergradient of C equals autograd through T' (eq. 2.11) and S' (eq. 2.12); finite differences agree."
    chain, tr, va = tiny_lbg(seed=1, lam=lam)
    batches = {'T': tr, 'S': tr, 'C': va}
    man = manual_c_gradient(chain, tr, va)
    eng = chain.problem.hypergradient('C', batches)['C']
    assert float(man.abs().max()) > 1e-6                   # a real signal, not zeros compared with zeros
    assert torch.allclose(eng, man, atol=1e-10, rtol=1e-8)
    chain.problem.method = 'finite_difference'
    fd = chain.problem.hypergradient('C', batches)['C']
    assert torch.allclose(fd, man, atol=1e-6, rtol=1e-3), float((fd - man).abs().max())


def test_k_equal_one_is_plain_training():
    "With one expert the GAM's loss is 0, E = G = 1, and the expert trains exactly as plain SGD on the same batches."
    torch.manual_seed(0)
    d, classes = 5, 3
    mk = lambda out: nn.Sequential(nn.Linear(d, 6), nn.Tanh(), nn.Linear(6, out)).double()
    gam, expert = mk(1), mk(classes)
    plain = mk(classes); plain.load_state_dict(expert.state_dict())
    chain = LBGChain(gam, [expert], 8, torch.optim.SGD(gam.parameters(), lr=0.1), torch.optim.SGD(expert.parameters(), lr=0.1),
                     grad_clip=None, dtype=torch.float64)
    C0 = chain.C.detach().clone()
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(8, d, generator=g, dtype=torch.float64); y = torch.randint(0, classes, (8,), generator=g)
        xv = torch.randn(8, d, generator=g, dtype=torch.float64); yv = torch.randint(0, classes, (8,), generator=g)
        chain.step((x, y, torch.arange(8)), (xv, yv))
        opt.zero_grad(); nn.functional.cross_entropy(plain(x), y).backward(); opt.step()
    for a, b in zip(expert.parameters(), plain.parameters()): assert torch.allclose(a, b, atol=1e-12)
    assert torch.equal(chain.C.detach(), C0)                # no gradient reaches C with one group


def test_each_expert_sees_only_its_group():
    chain, (x, y, idx), va = tiny_lbg(seed=2, K=3, n=12)
    seen = {k: [] for k in range(3)}
    hooks = [e.register_forward_hook(lambda m, inp, out, k=k: seen[k].append(inp[0].detach())) for k, e in enumerate(chain.experts)]
    try: chain.loss_S(dict(chain.experts.named_parameters()), dict(chain.gam.named_parameters()), x, y)
    finally:
        for h in hooks: h.remove()
    _, jh, _ = chain.assign(dict(chain.gam.named_parameters()), x)
    for k in range(3):
        got = torch.cat(seen[k]) if seen[k] else x[:0]
        assert torch.equal(got, x[jh == k])
    assert sum(len(torch.cat(v)) for v in seen.values() if v) == len(x)     # O(N): every example once


def test_c_rows_stay_distributions_and_move():
    chain, tr, va = tiny_lbg(seed=3, hypergradient='finite_difference')
    C0 = chain.C.detach().clone()
    for _ in range(4): chain.step(tr, va)
    q = group_probs(chain.C.detach())
    assert torch.allclose(q.sum(1), torch.ones(len(q), dtype=q.dtype)) and bool((q >= 0).all())
    assert not torch.equal(chain.C.detach(), C0)
    assert chain.predict(va[0]).shape == va[1].shape


def test_bad_settings_are_named():
    gam = nn.Linear(3, 2); experts = [nn.Linear(3, 2), nn.Linear(3, 2)]
    opt = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)
    with pytest.raises(ValueError, match='lam must be'): LBGChain(gam, experts, 4, opt(gam), opt(nn.ModuleList(experts)), lam=-1)
    with pytest.raises(ValueError, match="unknown distance 'wasserstein'"):
        LBGChain(gam, experts, 4, opt(gam), opt(nn.ModuleList(experts)), distance='wasserstein')
    with pytest.raises(ValueError, match='n_train must be'): LBGChain(gam, experts, 0, opt(gam), opt(nn.ModuleList(experts)))
