"Search drivers: every method runs and returns a genotype of its space; determinism; DARTS-ES; P-DARTS; random search."
import random
import pytest, torch
from trustnas_nb.genotypes import validate_genotype, get_genotype
from trustnas_nb.ops import get_space
from trustnas_nb.search import (METHODS, get_method, run_search, random_genotype, dominant_eigenvalue, _es_should_stop,
                                evaluate_genotype, paper_params)

TINY = dict(C=4, layers=3, nodes=2, n_train=64, n_val=64, batch_size=32, max_steps=2, epochs=1)

def test_method_registry_and_errors():
    for k in ('darts_1st', 'darts_2nd', 'pcdarts', 'pdarts', 'prdarts', 'sdarts_rs', 'sdarts_adv', 'pcdarts_adv', 'darts_es', 'rdarts_l2', 'random'):
        assert get_method(k).name in (k, 'darts')
    assert get_method('darts_1st').hypergradient == 'first_order' and get_method('darts_2nd').hypergradient == 'finite_difference'
    with pytest.raises(ValueError, match="unknown search method 'enas'"): get_method('enas')

@pytest.mark.parametrize('method', ['darts_1st', 'darts_2nd', 'pcdarts', 'pdarts', 'prdarts', 'sdarts_rs', 'sdarts_adv',
                                    'pcdarts_adv', 'darts_es', 'rdarts_l2', 'random'])
def test_every_method_returns_a_valid_genotype(method):
    r = run_search(method, 'darts', scale='ci', seed=0, progress=False, **TINY)
    sp = get_space('darts', TINY['nodes'])
    validate_genotype(r.genotype, sp)
    assert len(r.history) >= 1 and r.seconds > 0
    if method == 'pdarts':
        assert sum(op == 'skip_connect' for op, _ in r.genotype.normal) <= 2
        assert len({h['layers'] for h in r.history}) == 2          # two stages of different depth at ci scale

@pytest.mark.parametrize('space', ['s1', 's2', 's3', 's4'])
def test_rdarts_spaces_respected(space):
    r = run_search('darts_1st', space, scale='ci', seed=0, progress=False, **TINY)
    sp = get_space(space) if not get_space(space).uniform else get_space(space, TINY['nodes'])
    validate_genotype(r.genotype, sp)
    allowed = set(sp.primitives) - {'none'}
    assert {op for op, _ in r.genotype.normal + r.genotype.reduce} <= allowed

def test_search_is_deterministic():
    a = run_search('darts_2nd', 'darts', scale='ci', seed=3, progress=False, **TINY)
    b = run_search('darts_2nd', 'darts', scale='ci', seed=3, progress=False, **TINY)
    assert a.genotype == b.genotype
    assert [h['train_loss'] for h in a.history] == [h['train_loss'] for h in b.history]
    for k in a.alphas: assert torch.equal(a.alphas[k], b.alphas[k])

def test_search_reports_its_progress_per_epoch(tmp_path):
    import json
    from trustnas_nb.core import progress_to
    progress_to(tmp_path/'p.jsonl')
    try: run_search('darts_1st', 'darts', scale='ci', seed=0, progress=False, **{**TINY, 'epochs': 2})
    finally: progress_to(None)
    evs = [json.loads(l) for l in (tmp_path/'p.jsonl').read_text().splitlines()]
    assert [(e['what'], e['done'], e['total'], e['seed']) for e in evs] == [('search darts_1st', 1, 2, 0), ('search darts_1st', 2, 2, 0)]

def test_dominant_eigenvalue_matches_eigvalsh():
    torch.manual_seed(0)
    M = torch.randn(5, 5, dtype=torch.float64); A = M @ M.T + torch.diag(torch.arange(5.0, dtype=torch.float64))
    x = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    lam = dominant_eigenvalue(lambda: 0.5 * x @ A @ x + (x ** 3).sum() * 0, [x], iters=200, tol=1e-10)
    assert abs(lam - torch.linalg.eigvalsh(A).max().item()) < 1e-6 * abs(lam)

def test_early_stopping_rule():
    log = [dict(hessian_eig=e) for e in (1.0, 1.05, 1.1, 1.2)]
    assert not _es_should_stop(log, k=2, ratio=0.75)           # 1.05/1.2 = 0.875
    log.append(dict(hessian_eig=1.6))                            # 1.1/1.6 = 0.69 < 0.75
    assert _es_should_stop(log, k=2, ratio=0.75)
    assert not _es_should_stop(log[:2], k=2, ratio=0.75)         # not enough epochs yet

def test_random_genotype_is_valid_and_seeded():
    for sp in ('darts', 's1', 's3'):
        g = random_genotype(sp, random.Random(1)); validate_genotype(g, get_space(sp))
        assert all(op != 'none' for op, _ in g.normal + g.reduce)
    assert random_genotype('darts', 5) == random_genotype('darts', 5) != random_genotype('darts', 6)

def test_evaluation_and_paper_parameter_count():
    assert paper_params(get_genotype('DARTS_V2')) == 3_349_342
    ev = evaluate_genotype('DARTS_V2', scale='ci', seed=0, progress=False)
    assert 0 <= ev['test_acc'] <= 100 and abs(ev['test_acc'] + ev['test_err'] - 100) < 1e-9
    assert ev['params_paper'] == 3_349_342 and len(ev['history']) >= 1

def test_search_reads_a_real_dataset_from_the_data_root(tmp_path, monkeypatch):
    "The paper-scale data path: CIFAR-10 in its on-disk format under data_root, halved into the search splits."
    from trustnas_nb.loaders import write_fixture
    from trustnas_nb.search import search_data
    write_fixture('cifar10', tmp_path)
    monkeypatch.setenv('TRUSTNAS_DATA_ROOT', str(tmp_path))
    P = dict(dataset='cifar10', image_size=32, n_train=10_000, n_val=10_000, batch_size=4)
    tr, va, nc, ch = search_data(P, seed=0)
    xt = torch.cat([x for x, _ in tr]); xv = torch.cat([x for x, _ in va])
    assert nc == 10 and ch == 3 and xt.shape[1:] == (3, 32, 32)
    assert not any(torch.equal(a, b) for a in xt for b in xv)            # the two search halves are disjoint
    r = run_search('darts_1st', 'darts', scale='ci', seed=0, progress=False, **{**TINY, 'dataset': 'cifar10', 'image_size': 32,
                                                                                 'n_train': 8, 'n_val': 8, 'batch_size': 4})
    validate_genotype(r.genotype, get_space('darts', TINY['nodes']))

# ---- plug-ins of the one driver (seeds 003/004): SearchExtension hooks and drivers ----
from trustnas_nb.search import SearchExtension, Method, register_extension, register_driver, EXTENSIONS, DRIVERS, SearchResult

class _Recorder(SearchExtension):
    "Records every hook call; optionally swaps α's optimizer for plain SGD and overrides the genotype."
    def __init__(self, method, ctx, opts):
        super().__init__(method, ctx, opts); self.calls = []
    def arch_optimizer(self, params, lr, betas, weight_decay):
        self.calls.append('arch_optimizer')
        return torch.optim.SGD(params, lr=self.opts['sgd_lr']) if 'sgd_lr' in self.opts else None
    def w_loss(self, base, Pm, batch): self.calls.append('w_loss'); return base(Pm, batch)
    def a_loss(self, base, Pm, batch): self.calls.append('a_loss'); return base(Pm, batch)
    def before_step(self, step, epoch, bt, bv): self.calls.append(('before', step))
    def after_step(self, step, epoch, bt, bv, info): self.calls.append(('after', step, sorted(info['loss'])))
    def epoch_end(self, epoch): return dict(recorded=len(self.calls))
    def genotype(self, net): return get_genotype('DARTS_V2') if self.opts.get('fixed') else None

@pytest.fixture
def recorder():
    register_extension('_recorder', _Recorder)
    yield Method('_rec', 'recorder', 'first_order', extension='_recorder')
    EXTENSIONS.pop('_recorder', None)

def test_extension_hooks_run_in_order_and_change_the_search(recorder):
    r = run_search(recorder, scale='ci', seed=0, progress=False, **TINY)
    # the recorder is attached to the search log through epoch_end; its calls: optimizer once, then per step
    # before -> w_loss (lower level) -> a_loss (upper level) -> after
    assert r.history[-1]['recorded'] > 0
    plain = run_search('darts_1st', scale='ci', seed=0, progress=False, **TINY)
    assert r.genotype == plain.genotype and r.alphas.keys() == plain.alphas.keys()     # all hooks at their defaults: same search
    for k in plain.alphas: assert torch.allclose(torch.as_tensor(r.alphas[k]), torch.as_tensor(plain.alphas[k]))
    sgd = run_search(recorder, scale='ci', seed=0, progress=False, extension=dict(sgd_lr=50.0), **TINY)
    assert any(not torch.allclose(torch.as_tensor(sgd.alphas[k]), torch.as_tensor(plain.alphas[k])) for k in plain.alphas)
    fixed = run_search(recorder, scale='ci', seed=0, progress=False, extension=dict(fixed=True), **TINY)
    assert fixed.genotype == get_genotype('DARTS_V2')

def test_extension_call_sequence(recorder, monkeypatch):
    seen = {}
    orig = _Recorder.__init__
    def init(self, *a): orig(self, *a); seen['ext'] = self
    monkeypatch.setattr(_Recorder, '__init__', init)
    run_search(recorder, scale='ci', seed=0, progress=False, **TINY)
    calls = seen['ext'].calls
    assert calls[0] == 'arch_optimizer'
    steps = [c for c in calls if isinstance(c, tuple)]
    assert steps == [('before', 0), ('after', 0, ['alpha', 'w']), ('before', 1), ('after', 1, ['alpha', 'w'])]
    i0, i1 = calls.index(('before', 0)), calls.index(('after', 0, ['alpha', 'w']))
    assert {'w_loss', 'a_loss'} <= set(calls[i0:i1])

def test_driver_dispatch_and_option_errors(recorder):
    got = {}
    def fake(space, scale='ci', seed=0, device='cpu', progress=True, method=None, options=None, **overrides):
        got.update(space=space, scale=scale, seed=seed, method=method.name, options=options, overrides=overrides)
        return SearchResult(method.name, 'darts', seed, get_genotype('DARTS_V2'))
    register_driver('_fake', fake)
    try:
        r = run_search(Method('_drv', 'driver', driver='_fake'), 'darts', scale='ci', seed=3, progress=False,
                       extension=dict(beta=2.0), n_train=64)
        assert r.genotype == get_genotype('DARTS_V2')
        assert got == dict(space='darts', scale='ci', seed=3, method='_drv', options=dict(beta=2.0), overrides=dict(n_train=64))
    finally: DRIVERS.pop('_fake')
    with pytest.raises(ValueError, match="extension= applies to the methods of seeds 003/004 only, not to 'darts_1st'"):
        run_search('darts_1st', scale='ci', progress=False, extension=dict(T=1.0))
    with pytest.raises(ValueError, match="unknown search extension 'nope'"):
        run_search(Method('_x', 'x', extension='nope'), scale='ci', progress=False, **TINY)
    with pytest.raises(ValueError, match="unknown search driver 'nope'"):
        run_search(Method('_y', 'y', driver='nope'), scale='ci', progress=False)
