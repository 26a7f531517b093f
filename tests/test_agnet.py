import numpy as np, pandas as pd, pytest, torch
from trustnas_nb.nb201 import all_archs, arch_to_str, index_to_arch, isomorphism_key, str_to_arch, unique_archs
from trustnas_nb.agnet import (_space_index, ArchTable, Oracle, QueryBudgetExceeded, AGNetConfig, NB201Generator, SEARCHES, agnet_search,
                               arch_class, best_found, class_arch, fit_ensemble, onehot_encoding, path_encoding, pretrained_generator,
                               queries_to_best, rank_weights, run_searches, seed_table, synthetic_table, add_table1_columns, surrogate_table)

FAST = {'AG-Net': dict(epochs=2, hidden=16, rounds=1, pretrain_steps=30), 'AG-Net (GBR)': dict(epochs=2, hidden=16, rounds=1, pretrain_steps=30),
        'BANANAS': dict(epochs=60)}

def _members(arch):
    return [arch_to_str(index_to_arch(i)) for i in _space_index()[2][arch_class(arch)]]

@pytest.fixture(scope='module')
def table():
    return ArchTable(add_table1_columns(synthetic_table(120, seed=3)))

def test_generator_emits_only_valid_cells_even_for_extreme_z():
    G = pretrained_generator(AGNetConfig(hidden=16, rounds=1, pretrain_steps=30))
    z = torch.cat([torch.rand(64, 32) * 6 - 3, torch.full((4, 32), 1e30), torch.full((4, 32), -1e30), torch.full((4, 32), 1e6),
                   torch.full((2, 32), float('nan')), torch.full((2, 32), float('inf')), torch.zeros(2, 32)])
    g = torch.Generator().manual_seed(0)
    for greedy in (False, True):
        cells = G.generate(z, generator=g, greedy=greedy)
        assert len(cells) == len(z)
        for c in cells:
            ops = str_to_arch(c)                              # parses: 6 ops of the 5 primitives, the benchmark's layout
            assert arch_to_str(ops) == c
    with pytest.raises(ValueError, match='shape'):
        G(torch.zeros(3, 7))

def test_rank_weights_normalized_decreasing_and_by_hand():
    v = [3.0, 1.0, 2.0]
    w = rank_weights(v, k=0.01)                                # N = 3, ranks (0, 2, 1)
    raw = np.array([1 / 0.03, 1 / 2.03, 1 / 1.03])
    assert np.allclose(w, raw / raw.sum()) and abs(w.sum() - 1) < 1e-12
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    w = rank_weights(x, k=0.1)
    order = np.argsort(-x)
    assert np.all(np.diff(w[order]) < 0)                      # strictly decreasing in rank
    assert np.allclose(rank_weights(-x, k=0.1, higher_is_better=False), w)
    assert rank_weights([1, 1, 1])[0] > rank_weights([1, 1, 1])[1]     # ties: order of appearance
    for bad in ([], [1.0, float('nan')]):
        with pytest.raises(ValueError): rank_weights(bad)
    with pytest.raises(ValueError, match='k must'): rank_weights([1, 2], k=0)

@pytest.mark.parametrize('method', list(SEARCHES))
def test_each_search_respects_budget_never_repeats_and_is_reproducible(table, method):
    budget = 40
    a = SEARCHES[method](table, 'fgsm@1', budget, 5, **FAST.get(method, {}))
    assert len(a) == budget and list(a['query']) == list(range(1, budget + 1))
    assert a['cls'].nunique() == budget                       # isomorphic cells count as one: never two queries of a class
    assert all(table.contains(x) for x in a['arch'])
    assert np.allclose(a['best_value'], np.maximum.accumulate(a['value']))
    b = SEARCHES[method](table, 'fgsm@1', budget, 5, **FAST.get(method, {}))
    assert list(a['arch']) == list(b['arch']) and np.array_equal(a['value'], b['value'])
    c = SEARCHES[method](table, 'fgsm@1', budget, 6, **FAST.get(method, {}))
    assert list(c['arch']) != list(a['arch'])

def test_oracle_counts_isomorphic_cells_once_and_enforces_budget(table):
    o = Oracle(table, 'clean_acc', 2)
    a = next(x for x in table.df['arch'] if len(_members(x)) > 1)
    o.query(a)
    other = next(s for s in _members(a) if s != a)                 # an isomorphic cell with another string
    with pytest.raises(ValueError, match='already queried'): o.query(other)
    rest = [x for x in table.df['arch'] if x != a]
    o.query(rest[0])
    with pytest.raises(QueryBudgetExceeded): o.query(rest[1])
    outside = next(s for s in unique_archs() if not table.contains(s))
    with pytest.raises(ValueError, match='not in the table'): Oracle(table, 'clean_acc', 5).query(outside)
    with pytest.raises(ValueError, match='exceeds the search domain'): Oracle(table, 'clean_acc', len(table) + 1)
    with pytest.raises(ValueError, match='unknown target'): Oracle(table, 'accuracy', 3)

def test_fallback_extends_the_domain_and_caches():
    calls = []
    def fb(arch): calls.append(arch); return dict(clean_acc=0.5, **{'fgsm@1': 0.1})
    t = ArchTable(synthetic_table(10, seed=0)[['arch', 'clean_acc', 'fgsm@1']], fallback=fb)
    assert len(t) == 6466
    outside = next(s for s in unique_archs() if arch_class(s) not in t._row)
    assert Oracle(t, 'clean_acc', 3).query(outside) == 0.5 and Oracle(t, 'fgsm@1', 3).query(outside) == 0.1
    assert calls == [outside]

def test_table_rejects_bad_input():
    df = synthetic_table(5, seed=0)
    i = next(i for i, x in enumerate(df['arch']) if len(_members(x)) > 1)
    iso = [s for s in _members(df['arch'][i]) if s != df['arch'][i]]
    with pytest.raises(ValueError, match='isomorphic'): ArchTable(pd.concat([df, df.iloc[[i]].assign(arch=iso[0])]))
    with pytest.raises(ValueError, match="'arch'"): ArchTable(df.drop(columns='arch'))
    with pytest.raises(ValueError, match='NAS-Bench-201'): ArchTable(df.assign(arch='|conv~0|'))

def test_neighbours_on_the_whole_space_are_the_one_edit_cells():
    full = ArchTable(pd.DataFrame({'arch': unique_archs(), 'v': np.zeros(6466)}))
    a = '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|'   # its class is itself
    ops = str_to_arch(a)
    edits = {arch_class(arch_to_str(ops[:e] + (o,) + ops[e + 1:])) for e in range(6) for o in
             ('none', 'skip_connect', 'nor_conv_1x1', 'avg_pool_3x3')}
    assert set(map(int, full.neighbours(a))) == edits

def test_path_encoding_by_hand():
    skip = '|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|'
    assert path_encoding([skip]).sum() == 4                     # 4 input→output paths, all live
    cut = '|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|'
    assert path_encoding([cut]).sum() == 2                      # 0→3 and 0→1→2→3 go through `none`
    assert path_encoding(['|none~0|+|none~0|none~1|+|none~0|none~1|none~2|']).sum() == 0
    assert onehot_encoding([skip]).shape == (1, 30) and onehot_encoding([skip]).sum() == 6

def test_ensemble_fits_a_linear_function():
    rng = np.random.default_rng(0)
    X = rng.random((80, 10)); y = X @ np.arange(10.0)
    pred = fit_ensemble(X, y, seed=0, epochs=300)
    Xt = rng.random((100, 10)); m, s = pred(Xt)
    assert np.corrcoef(m, Xt @ np.arange(10.0))[0, 1] > 0.95 and s.shape == (100,) and (s >= 0).all()

def test_weighted_retraining_moves_the_generator_towards_the_best_cells():
    # a table whose target rewards 3x3 convolutions: after AG-Net's rounds the generator draws more of them
    full = pd.DataFrame({'arch': unique_archs()})
    full['v'] = [str_to_arch(a).count('nor_conv_3x3') + 0.01 * (i % 7) for i, a in enumerate(full['arch'])]
    t = ArchTable(full)
    cfg = dict(epochs=6, hidden=16, rounds=1, pretrain_steps=30, z_dim=16)
    tr, G, P = agnet_search(t, 'v', 64, seed=0, config=cfg, return_state=True)
    g = torch.Generator().manual_seed(1)
    z = torch.rand(400, 16, generator=g) * 6 - 3
    conv = lambda gen: np.mean([str_to_arch(c).count('nor_conv_3x3') for c in gen.generate(z, generator=torch.Generator().manual_seed(2))])
    assert conv(G) > conv(pretrained_generator(AGNetConfig(**cfg))) + 0.5
    assert tr['value'].iloc[16:].mean() > tr['value'].iloc[:16].mean()        # the generated rounds beat the random start

def test_summaries_agree_with_the_traces(table):
    tr = run_searches(table, ['Random Search', 'Local Search'], ['clean_acc', 'fgsm@1'], 30, [0, 1])
    bf = best_found(tr, table)
    assert len(bf) == 8
    for _, r in bf.iterrows():
        d = tr[(tr.method == r.method) & (tr.target == r.target) & (tr.seed == r.seed)]
        assert r[r.target] == pytest.approx(d['value'].max())
    q = queries_to_best(tr, table, 30)
    assert ((q.queries_to_best <= 30) == q.found).all()
    with pytest.raises(ValueError, match='unknown search'): run_searches(table, ['DARTS'], ['clean_acc'], 5, [0])

def test_seed_table():
    t = seed_table('s002_table1')
    assert t.loc[t.method == 'Optimum', 'seed_fgsm'].item() == 69.24 and len(t) == 7
    with pytest.raises(ValueError, match='unknown seed-002'): seed_table('table9')

def test_surrogate_keeps_measured_rows_and_bounds_accuracies():
    m = add_table1_columns(synthetic_table(20, seed=1))
    s = surrogate_table(m, ['clean_acc', 'fgsm@1'], seed=0)
    assert len(s) == 6466 and s['measured'].sum() == 20
    got = s.set_index('arch').loc[[class_arch(arch_class(a)) for a in m['arch']], 'clean_acc'].to_numpy()
    assert np.allclose(got, m['clean_acc'].to_numpy())
    assert s['clean_acc'].between(0, 1).all() and s['fgsm@1'].nunique() > 6000      # bounded, and no ties to speak of
    with pytest.raises(ValueError, match='not columns'): surrogate_table(m, ['top1'])


def test_seed_table_is_the_frame_it_was():
    "`seed_table` (now `reference.table_frame`, the key in the table) keeps `target` and `method` unprefixed, as before."
    want = pd.DataFrame([('optimum', 'Optimum', 94.68, 69.24, 58.85, 54.02, 73.61, 58.55),
                         ('clean', 'BANANAS', 94.21, 64.25, 41.10, 18.62, 68.69, 55.52),
                         ('clean', 'Local Search', 94.65, 63.95, 41.17, 18.74, 69.59, 56.90),
                         ('clean', 'Random Search', 94.22, 63.38, 40.09, 17.84, 68.40, 55.60),
                         ('fgsm', 'BANANAS', 93.52, 66.35, 45.59, 20.72, 68.01, 54.88),
                         ('fgsm', 'Local Search', 93.86, 69.10, 48.27, 23.18, 69.47, 56.57),
                         ('fgsm', 'Random Search', 93.57, 67.25, 46.15, 20.93, 68.44, 55.10)],
                        columns=['target', 'method', 'seed_clean', 'seed_fgsm', 'seed_pgd', 'seed_apgd', 'seed_square', 'seed_cifar10c'])
    pd.testing.assert_frame_equal(seed_table('s002_table1'), want, check_exact=True)
    assert list(seed_table('s002_agnet_nb201').columns) == ['method', 'seed_val_acc', 'seed_test_acc', 'seed_queries']
    with pytest.raises(ValueError, match=r"^unknown seed-002 table 'nope'; expected one of s002_table1, s002_agnet_nb201$"):
        seed_table('nope')
