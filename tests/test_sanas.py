"SANAS (ch.4): the four-level chain against hand-written unrolls, the update schedule, δ, the driver's methods."
import pytest
import torch

from trustnas_nb.mlo import hypergradient
from trustnas_nb.sanas import (tiny_sanas, manual_alpha_gradient, sanas_settings, SignAscent, GroupedOptimizer, DeltaTable,
                               LEVELS)
from trustnas_nb.search import run_search, METHODS, get_method

torch.set_num_threads(1)


def rel(a, b):
    return float(torch.cat([(a[k] - b[k]).flatten() for k in a]).norm() / torch.cat([b[k].flatten() for k in b]).norm())


@pytest.mark.parametrize('kw', [dict(), dict(reweighting='abs', gamma=0.5), dict(reweighting='concat'), dict(reweighting='add', pc_k=2)])
def test_alpha_hypergradient_is_the_supplements_unroll(kw):
    "Eqs. (1)-(4) written by hand (float64) = the engine's exact hypergradient; finite differences (eq. (6)) agree."
    chain, tr, va = tiny_sanas(**kw)
    chain.table.load(chain.d, tr[2])
    B = {'w1': tr, 'delta': tr, 'w2': tr, 'alpha': va}
    man = manual_alpha_gradient(chain, tr, va)
    assert rel(hypergradient(chain.levels, 'alpha', B, method='exact'), man) < 1e-10
    # eq. (6)'s central differences converge to it (float64; at DARTS' 0.01 step a tiny ReLU net crosses kinks)
    assert rel(hypergradient(chain.levels, 'alpha', B, method='finite_difference', fd_eps=1e-5), man) < 1e-7
    fo = hypergradient(chain.levels, 'alpha', B, method='first_order')
    assert rel(fo, man) > 1e-4, 'the unrolls must matter, else the comparison proves nothing'


def test_gamma_weights_w1_validation_loss():
    "O_A = L_val(W2') + γ L_val(W1'): the first-order gradient is linear in γ."
    gs = {}
    for g in (0.0, 1.0, 2.0):
        chain, tr, va = tiny_sanas(gamma=g)
        chain.table.load(chain.d, tr[2])
        gs[g] = hypergradient(chain.levels, 'alpha', {'w1': tr, 'delta': tr, 'w2': tr, 'alpha': va}, method='first_order')
    for k in gs[0]:
        assert torch.allclose(gs[2][k] - gs[1][k], gs[1][k] - gs[0][k], atol=1e-12)
    assert max(float((gs[1][k] - gs[0][k]).abs().max()) for k in gs[0]) > 1e-8


def test_schedule_counts_over_30_steps():
    chain, tr, va = tiny_sanas(dtype=torch.float32)
    counts = {n: 0 for n in LEVELS}
    for _ in range(30):
        for n in chain.step(tr, va)['updated']: counts[n] += 1
    assert counts == dict(w1=30, delta=10, w2=10, alpha=6)


def test_warmup_keeps_one_schedule_and_leaves_alpha_alone():
    chain, tr, va = tiny_sanas(dtype=torch.float32)
    A0 = {k: v.detach().clone() for k, v in chain.net.named_arch_parameters()}
    ups = [chain.step(tr, va, warm=True)['updated'] for _ in range(5)]
    assert all('alpha' not in u for u in ups) and ups[3] == ['w1', 'delta', 'w2']
    assert all(torch.equal(A0[k], v) for k, v in chain.net.named_arch_parameters())
    assert chain.step(tr, va)['updated'] == ['alpha', 'w1']          # step 5: A is due (first), δ/W2 are not


def test_delta_ascends_its_loss_and_stays_in_the_ball():
    chain, tr, va = tiny_sanas(dtype=torch.float32)
    x, y, idx = tr
    W1, A = dict(chain.net.named_weights()), dict(chain.net.named_arch_parameters())
    chain.table.load(chain.d, idx)
    before = float(chain.loss_delta(W1, A, x, chain.d).detach())
    d0 = chain.d.detach().clone()
    chain.S['pgd_steps'] = 3
    chain.problem.step_count = 3                      # δ and W2 due, A not
    chain.step(tr, va)
    W1 = dict(chain.net.named_weights())
    assert float(chain.loss_delta(W1, A, x, chain.table.table[idx]).detach()) > before - 1e-6
    assert not torch.equal(chain.table.table[idx], d0)
    assert float(chain.table.table.abs().max()) <= chain.S['eps'] + 1e-7
    assert chain.pgd_extra == 2


def test_delta_table_persists_per_image_and_is_seeded():
    t1, t2 = DeltaTable(10, (1, 2, 2), 0.03, seed=3), DeltaTable(10, (1, 2, 2), 0.03, seed=3)
    assert torch.equal(t1.table, t2.table) and float(t1.table.abs().max()) <= 0.03
    p = torch.zeros(2, 1, 2, 2, requires_grad=True)
    idx = torch.tensor([7, 2])
    t1.load(p, idx); assert torch.equal(p.detach(), t1.table[idx])
    with torch.no_grad(): p.fill_(0.01)
    t1.store(p, idx); assert torch.equal(t1.table[7], torch.full((1, 2, 2), 0.01)) and torch.equal(t1.table[0], t2.table[0])
    with pytest.raises(ValueError, match='drop its last incomplete batch'): t1.load(p, torch.tensor([1, 2, 3]))


def test_sign_ascent_and_grouped_optimizer():
    d = torch.zeros(3, requires_grad=True); w = torch.ones(2, requires_grad=True)
    g = GroupedOptimizer(SignAscent([d], lr=0.02, bound=0.03), torch.optim.SGD([w], lr=0.5))
    d.grad = torch.tensor([-1., 2., 0.]); w.grad = torch.tensor([1., 1.])
    g.step(); g.step()
    assert torch.allclose(d, torch.tensor([0.03, -0.03, 0.])) and torch.allclose(w, torch.zeros(2))
    g.zero_grad(); assert d.grad is None and w.grad is None
    with pytest.raises(ValueError, match='lr must be > 0'): SignAscent([d], lr=0, bound=1)


def test_modes_and_saliency_variants_build_the_right_chain():
    for kw, names in ((dict(mode='mtl'), ['lower', 'alpha']), (dict(saliency='ig'), ['w1', 'w2', 'alpha']),
                      (dict(saliency='sg'), ['w1', 'w2', 'alpha']), (dict(mode='separate'), list(LEVELS))):
        chain, tr, va = tiny_sanas(dtype=torch.float32, **kw)
        assert [lv.name for lv in chain.levels] == names
        A0 = {k: v.detach().clone() for k, v in chain.net.named_arch_parameters()}
        for _ in range(6): chain.step(tr, va)
        assert any(not torch.equal(A0[k], v) for k, v in chain.net.named_arch_parameters())
        assert float(chain.table.table.abs().max()) <= chain.S['eps'] + 1e-6
    chain, tr, va = tiny_sanas(mode='separate')
    chain.table.load(chain.d, tr[2])
    B = {'w1': tr, 'delta': tr, 'w2': tr, 'alpha': va}
    assert rel(chain.problem.hypergradient('alpha', B), hypergradient(chain.levels, 'alpha', B, method='first_order')) == 0


def test_settings_errors_name_the_bad_value():
    for bad, msg in ((dict(gamma=-1), 'gamma'), (dict(eps=float('nan')), 'eps'), (dict(pgd_steps=0), 'pgd_steps'),
                     (dict(every=dict(w1=1, delta=3)), 'every'), (dict(reweighting='xor'), "'xor'"), (dict(saliency='lime'), "'lime'"),
                     (dict(mode='mtl', saliency='ig'), 'ablation'), (dict(foo=1), 'foo')):
        with pytest.raises(ValueError, match=msg): sanas_settings('ci', bad)
    with pytest.raises(ValueError, match='SANAS methods only'): run_search('darts_2nd', scale='ci', progress=False, sanas=dict(gamma=1))


def test_methods_of_table_4_1_exist():
    for base in ('darts2nd', 'pcdarts', 'pdarts', 'prdarts'):
        for kind in ('sanas', 'ec', 'cdep', 'gmpgc'):
            m = get_method(f'{kind}_{base}')
            assert m.saliency == kind
    for base in ('darts2nd', 'pcdarts', 'pdarts', 'prdarts'):       # the chain's hypergradient on every base (L1956)
        assert get_method(f'sanas_{base}').hypergradient == 'finite_difference'
    assert get_method('sanas_pcdarts').partial_channels and get_method('sanas_pdarts').progressive
    assert get_method('sanas_prdarts').gates == 'hard_concrete'


@pytest.mark.parametrize('method', ['sanas_darts2nd', 'sanas_pcdarts', 'sanas_pdarts', 'sanas_prdarts'])
def test_sanas_search_runs_on_every_base(method):
    r = run_search(method, scale='ci', seed=0, progress=False, dataset='cluttered_digits', image_size=16)
    assert r.method == method and len(r.genotype.normal) > 0
    h = r.history_frame()
    assert {'delta_abs_mean', 'delta_at_bound'} <= set(h.columns)
    r2 = run_search(method, scale='ci', seed=0, progress=False, dataset='cluttered_digits', image_size=16)
    assert r2.genotype_str == r.genotype_str                    # same seed, same search


def test_sanas_options_reach_the_chain():
    a = run_search('sanas_darts2nd', scale='ci', seed=0, progress=False, sanas=dict(reweighting='none', gamma=0.0))
    b = run_search('sanas_darts2nd', scale='ci', seed=0, progress=False, sanas=dict(reweighting='concat'))
    assert a.alphas.keys() == b.alphas.keys()
    assert any(not torch.equal(a.alphas[k], b.alphas[k]) for k in a.alphas)


def test_impossible_settings_and_tables_are_refused_clearly():
    from trustnas_nb.sanas import sanas_settings, DeltaTable
    with pytest.raises(ValueError, match="A would never move"):
        sanas_settings('ci', dict(explainer_in_alpha=False, mode='separate'))
    with pytest.raises(ValueError, match=r'needs 2\.0 GiB, more than DeltaTable.MAX_BYTES'):
        class Small(DeltaTable): MAX_BYTES = 2**30
        Small(2**19, (1024,), eps=0.03)
