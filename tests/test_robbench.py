import colorsys, json, math
import numpy as np, pandas as pd, pytest, torch
from torch import nn
from scipy.stats import kendalltau
from trustnas_nb import robbench as rb
from trustnas_nb.loaders import DatasetFormatError, DatasetNotFoundError
from trustnas_nb.nb201 import all_archs, arch_index, arch_to_str, sample_archs, str_to_arch, representative

A = sample_archs(3, seed=0)
TINY = dict(n_train=96, n_test=32, n_attack=16, C=4, N=1, epochs=1, eps=dict(fgsm=(1, 8), pgd=(1,), apgd=(1,), square=(1,)),
            square_queries=5, corruptions=('gaussian_noise', 'brightness'), severities=(2,), proxy_batch=16)

@pytest.fixture(scope='module')
def tiny():
    torch.set_num_threads(1)
    return rb.build_robustness_dataset(A[:2], scale='ci', seed=0, **TINY)

# --- columns, eps grid -------------------------------------------------------------------------------------------
def test_eps_labels_and_columns_round_trip_and_the_seed_grid():
    for a, es in rb.EPS_GRID.items():
        for e in es:
            assert rb.parse_attack_column(rb.attack_column(a, e)) == (a, float(e))
    assert rb.EPS_GRID['pgd'] == (0.1, 0.5, 1, 2, 3, 4, 8, 255) and len(rb.EPS_GRID['fgsm']) == 11
    assert rb.attack_column('pgd', 0.5) == 'pgd@0.5' and rb.attack_column('fgsm', 8.0) == 'fgsm@8'
    assert math.isclose(rb.ATTACK_SETTINGS['pgd']['step_ratio'], 1 / 30) and rb.ATTACK_SETTINGS['apgd']['steps'] == 100
    for bad in (0, -1, 256, float('nan'), '1', True):
        with pytest.raises(ValueError): rb.eps_label(bad)
    with pytest.raises(ValueError, match='canonical'): rb.parse_attack_column('pgd@1.0')
    with pytest.raises(ValueError): rb.check_eps_grid({'pgd': (4, 1)})
    with pytest.raises(ValueError): rb.check_eps_grid({'cw': (1,)})

# --- Kendall tau ---------------------------------------------------------------------------------------------------
def test_kendall_tau_matches_scipy_with_and_without_ties():
    rng = np.random.default_rng(0)
    for a, b in [([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]), ([1, 2, 2, 3, 5, 4], [2, 1, 3, 3, 6, 5]),
                 (rng.integers(0, 4, 40), rng.integers(0, 5, 40)), (rng.normal(size=700), rng.normal(size=700))]:
        assert rb.kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)
    assert rb.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert rb.kendall_tau([1, 2, np.nan, 4], [1, 2, 9, 3]) == pytest.approx(kendalltau([1, 2, 4], [1, 2, 3]).statistic)
    assert math.isnan(rb.kendall_tau([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError): rb.kendall_tau([1, 2], [1, 2, 3])

# --- corruptions ---------------------------------------------------------------------------------------------------
def test_brightness_is_exactly_cifar_c_hsv_value_shift_and_corruptions_are_valid():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 6, 6, generator=g)
    y = rb.corrupt(x, 'brightness', 3)
    for n, i, j in [(0, 0, 0), (1, 2, 3), (2, 5, 5)]:
        h, s, v = colorsys.rgb_to_hsv(*x[n, :, i, j].tolist())
        want = colorsys.hsv_to_rgb(h, s, min(v + 0.15, 1.0))
        assert np.allclose(y[n, :, i, j].tolist(), want, atol=1e-6)
    for name in rb.CORRUPTIONS:
        prev = 0.0
        for s in (1, 5):
            z = rb.corrupt(x, name, s, torch.Generator().manual_seed(1))
            assert z.shape == x.shape and z.min() >= 0 and z.max() <= 1
            assert torch.equal(z, rb.corrupt(x, name, s, torch.Generator().manual_seed(1)))   # same generator, same image
            d = (z - x).abs().mean().item()
            if name != 'pixelate': assert d >= prev - 1e-6   # severity 5 distorts more (pixelating pure noise: no order)
            prev = d
    with pytest.raises(ValueError): rb.corrupt(x, 'fog', 1)
    with pytest.raises(ValueError): rb.corrupt(x, 'contrast', 6)
    with pytest.raises(ValueError): rb.corrupt(x * 2, 'contrast', 1)

# --- the dataset -----------------------------------------------------------------------------------------------------
def test_build_gives_the_shared_schema_and_is_reproducible(tiny):
    df = tiny
    att = ['fgsm@1', 'fgsm@8', 'pgd@1', 'apgd@1', 'square@1']
    assert list(df.columns[:4]) == ['arch', 'index', 'params', 'clean_acc']
    assert list(df.columns[4:9]) == att and list(df.columns[9:11]) == ['corr:gaussian_noise', 'corr:brightness']
    assert df['arch'].tolist() == A[:2] and df['index'].tolist() == [arch_index(a) for a in A[:2]]
    assert ((df[['clean_acc'] + att] >= 0) & (df[['clean_acc'] + att] <= 1)).all().all() and (df.params > 0).all()
    rb.validate_robustness_frame(df)
    assert df.attrs['meta']['eps_grid'] == {'fgsm': [1.0, 8.0], 'pgd': [1.0], 'apgd': [1.0], 'square': [1.0]}
    assert df.attrs['meta']['attacks']['square']['n_queries'] == 5 and df.attrs['meta']['attacks']['pgd']['steps'] == 40
    one = rb.build_robustness_dataset(A[1:2], scale='ci', seed=0, **TINY)          # a row does not depend on the other rows
    cols = [c for c in df.columns if c not in ('train_s', 'eval_s')]
    pd.testing.assert_frame_equal(one[cols].reset_index(drop=True), df[cols].iloc[1:].reset_index(drop=True))
    with pytest.raises(ValueError, match='more than once'): rb.build_robustness_dataset([A[0], A[0]], scale='ci', **TINY)

def test_save_load_round_trip_and_malformed_tables_are_rejected(tiny, tmp_path):
    csv, js = rb.save_robustness_dataset(tiny, tmp_path/'d.csv')
    back = rb.load_robustness_dataset(csv)
    pd.testing.assert_frame_equal(back, tiny, check_dtype=False)
    meta = json.loads(js.read_text())
    assert {'version', 'scale', 'seed', 'recipe', 'eps_grid', 'attacks', 'package_version'} <= set(meta)
    def bad(mod, match, meta_mod=None):
        d = tiny.copy(); d = mod(d)
        d.to_csv(tmp_path/'b.csv', index=False)
        m = dict(meta); m.update(meta_mod or {}); m['n_archs'] = len(d)
        (tmp_path/'b.json').write_text(json.dumps(m))
        with pytest.raises(ValueError, match=match): rb.load_robustness_dataset(tmp_path/'b.csv')
    bad(lambda d: d.rename(columns={'pgd@1': 'pgd@1.0'}), 'canonical')
    bad(lambda d: d.rename(columns={'pgd@1': 'cw@1'}), 'unknown column')
    bad(lambda d: d.assign(clean_acc=d.clean_acc * 100 + 1), 'fractions')
    bad(lambda d: d.assign(index=d['index'] + 1), 'arch_index')
    bad(lambda d: pd.concat([d, d.iloc[:1]]), 'duplicate')
    bad(lambda d: d.assign(arch=['|bogus~0|'] * len(d)), 'invalid')
    bad(lambda d: d, 'eps grid', dict(eps_grid={'pgd': [1, 2]}))
    bad(lambda d: d, 'version', dict(version='9.0'))
    (tmp_path/'c.csv').write_text(tiny.to_csv(index=False))
    with pytest.raises(FileNotFoundError): rb.load_robustness_dataset(tmp_path/'c.csv')

# --- published formats ----------------------------------------------------------------------------------------------
def _published(root, clean=None, pgd=None, eps=(0.5, 1.0)):
    s0, s1 = '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|', \
             '|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|'
    s2 = '|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|'                    # isomorphic to s1
    assert representative(s1) == representative(s2)
    meta = {'ids': {'7': {'nb201-string': s0, 'isomorph': '7'}, '3': {'nb201-string': s1, 'isomorph': '3'},
                    '12': {'nb201-string': s2, 'isomorph': '3'}}, 'epsilons': {'pgd@Linf': list(eps)}}
    (root/'cifar10').mkdir(parents=True, exist_ok=True)
    (root/'meta.json').write_text(json.dumps(meta))
    w = lambda key, vals: (root/'cifar10'/f'{key}_accuracy.json').write_text(json.dumps({'cifar10': {key: {'accuracy': vals}}}))
    w('clean', clean or {'7': 0.93, '3': 0.42})
    w('pgd@Linf', pgd or {'7': [0.5, 0.3], '3': [0.2, 0.1]})
    w('brightness', {'7': [0.9, 0.8, 0.7, 0.6, 0.5], '3': [0.4] * 5})
    return s0, s1

def test_published_robustness_files_are_read_into_the_schema(tmp_path):
    s0, s1 = _published(tmp_path)
    df = rb.load_published_robustness(tmp_path)
    assert df['arch'].tolist() == [s1, s0] and df['nb201_index'].tolist() == [3, 7]     # representatives only
    r = df.set_index('arch').loc[s0]
    assert r.clean_acc == 0.93 and r['pgd@0.5'] == 0.5 and r['pgd@1'] == 0.3 and r['corr:brightness'] == pytest.approx(0.7)
    assert r['index'] == arch_index(s0) and math.isnan(r.params)
    with pytest.raises(DatasetNotFoundError): rb.load_published_robustness(tmp_path/'nowhere')
    _published(tmp_path, pgd={'7': [0.5], '3': [0.2, 0.1]})
    with pytest.raises(DatasetFormatError, match='expected 2 values'): rb.load_published_robustness(tmp_path)
    _published(tmp_path, clean={'7': 93.0, '3': 42.0})
    with pytest.raises(DatasetFormatError, match=r'outside \[0, 1\]'): rb.load_published_robustness(tmp_path)
    (tmp_path/'meta.json').write_text(json.dumps({'ids': {}}))
    with pytest.raises(DatasetFormatError, match='epsilons'): rb.load_published_robustness(tmp_path)

def _nb201_file(path, bad=None):
    archs = all_archs()[:3]
    def rc(acc, seed): return {'name': 'cifar10', 'seed': seed, 'epochs': 200, 'params': 0.5, 'flop': 40.0, 'net_state_dict': None,
                               'eval_acc1es': {'ori-test@199': acc, 'ori-test@198': 1.0}, 'train_acc1es': {199: 99.0}}
    infos = {}
    for i, s in enumerate(archs):
        full = {'arch_index': i, 'arch_str': s, 'dataset_seed': {'cifar10': [777, 888]},
                'all_results': {('cifar10', 777): rc(90.0 + i, 777), ('cifar10', 888): rc(92.0 + i, 888)}, 'clear_net_done': True}
        infos[i] = {'full': full, 'less': full}
    d = {'meta_archs': archs, 'arch2infos': infos, 'evaluated_indexes': set(range(3)), 'total_archs': 3}
    if bad: bad(d)
    torch.save(d, path)
    return archs

def test_nb201_benchmark_file_is_read_with_weights_only(tmp_path):
    f = tmp_path/'NAS-Bench-201-v1_1-096897.pth'
    archs = _nb201_file(f)
    df = rb.load_nb201_benchmark(tmp_path)                      # a directory: the file is found by name
    assert df['arch'].tolist() == archs and df['nb201_index'].tolist() == [0, 1, 2]
    assert df['test_acc'].tolist() == pytest.approx([0.91, 0.92, 0.93]) and (df.params == 0.5).all() and (df.n_seeds == 2).all()
    assert df['index'].tolist() == [arch_index(a) for a in archs]
    _nb201_file(f, bad=lambda d: d.pop('arch2infos'))
    with pytest.raises(DatasetFormatError, match='arch2infos'): rb.load_nb201_benchmark(f)
    _nb201_file(f, bad=lambda d: d['meta_archs'].reverse())
    with pytest.raises(DatasetFormatError, match='does not match'): rb.load_nb201_benchmark(f)
    from fractions import Fraction                               # any class outside the weights_only allow-list
    torch.save({'x': Fraction(1, 3)}, tmp_path/'evil.pth')
    with pytest.raises(DatasetFormatError, match='weights_only'): rb.load_nb201_benchmark(tmp_path/'evil.pth')
    with pytest.raises(DatasetNotFoundError): rb.load_nb201_benchmark(tmp_path/'missing')
    with pytest.raises(ValueError): rb.load_nb201_benchmark(f, dataset='mnist')

# --- proxies --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(12, 3, 8, 8, generator=g), torch.randint(0, 10, (12,), generator=g)

def test_proxies_are_deterministic_under_a_seed_and_invariant_to_batch_order(batch):
    x, y = batch
    net = lambda s: rb.build_model(A[0], 4, 1, 10, 3, seed=s)
    p1, p2 = rb.proxy_scores(net(0), x, y), rb.proxy_scores(net(0), x, y)
    assert p1 == p2 and set(p1) == set(rb.PROXIES) and all(np.isfinite(v) for v in p1.values())
    assert rb.proxy_scores(net(1), x, y)['snip'] != p1['snip']                          # another seed, another initialization
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    pp = rb.proxy_scores(net(0), x[perm], y[perm])
    for k in rb.PROXIES: assert pp[k] == pytest.approx(p1[k], rel=1e-4), k
    with pytest.raises(ValueError): rb.proxy_scores(net(0), x, y, ['naswot'])

def test_proxies_match_hand_computations_on_small_networks():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3, bias=False)
    x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 0, 1])
    g, = torch.autograd.grad(nn.functional.cross_entropy(lin(x), y), lin.weight)
    assert rb.proxy_grad_norm(lin, x, y) == pytest.approx(g.norm().item(), rel=1e-6)
    assert rb.proxy_snip(lin, x, y) == pytest.approx((g * lin.weight).abs().sum().item(), rel=1e-6)
    # SynFlow's conservation: in a bias-free ReLU chain every layer's score sums to R = 1ᵀ|W2||W1|1
    net = nn.Sequential(nn.Conv2d(2, 3, 1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(3, 2, bias=False))
    W1, W2 = net[0].weight.detach().abs().view(3, 2).double(), net[3].weight.detach().abs().double()
    R = (W2 @ W1 @ torch.ones(2, dtype=torch.float64)).sum().item()
    assert rb.proxy_synflow(net, input_shape=(1, 2, 1, 1)) == pytest.approx(2 * R, rel=1e-9)
    # Jacobian norm of a linear model: sum over classes of the l1 norm of each weight row
    lin2 = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False))
    assert rb.proxy_jacobian_norm(lin2, torch.randn(6, 1, 2, 2)) == pytest.approx(lin2[1].weight.abs().sum().item(), rel=1e-6)

# --- analyses ---------------------------------------------------------------------------------------------------------
def test_neighbours_budget_and_drawing():
    nb = rb.neighbours(A[0])
    o = str_to_arch(A[0])
    assert len(nb) == len(set(nb)) == 24 and all(sum(p != q for p, q in zip(o, str_to_arch(n))) == 1 for n in nb)
    assert rb.changed_edge(A[0], nb[0]).startswith('(0→1)')
    df = pd.DataFrame(dict(arch=A, params=[10, 20, 30], clean_acc=[0.5, 0.9, 0.95]))
    assert rb.top_under_budget(df, 25, k=5)['arch'].tolist() == [A[1], A[0]]
    with pytest.raises(ValueError): rb.top_under_budget(df, 25, k=0)
    import matplotlib; matplotlib.use('Agg')
    ax = rb.draw_cell(A[0])
    assert {t.get_text() for t in ax.texts} >= {'in', 'out', '1', '2'}
    assert rb.seed_table('s002_optimum')['seed_value'].iloc[0] == 94.68

def test_robbench_benchmark_runs_quick(tmp_path):
    "benchmarks/bench_robbench.py at ci scale on 2 cells: it runs and reports a positive rate and the whole-space estimate."
    import re, subprocess, sys
    from pathlib import Path
    bench = Path(__file__).resolve().parents[1]/'benchmarks'/'bench_robbench.py'
    out = tmp_path/'r.md'
    r = subprocess.run([sys.executable, str(bench), '--scale', 'ci', '--n', '2', '--threads', '1', '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    md = out.read_text()
    rate = float(re.search(r'\*\*([0-9.]+) architectures per minute\*\*', md).group(1))
    assert rate > 0 and 'All 6466 unique cells' in md and md.count('| `|') == 2


def test_seed_table_is_the_frame_it_was():
    "`seed_table` (now `reference.table_frame`) returns the frame the former inline code built: first column unprefixed."
    want = pd.DataFrame([('clean_acc', 94.68), ('fgsm@1', 69.24), ('pgd@1', 58.85), ('apgd@1', 54.02), ('square@1', 73.61),
                         ('corruption_mean', 58.55)], columns=['criterion', 'seed_value'])
    pd.testing.assert_frame_equal(rb.seed_table('s002_optimum'), want, check_exact=True)
    assert str(rb.seed_table('s002_space')['seed_value'].dtype) == 'int64'
    with pytest.raises(ValueError, match=r"^unknown seed-002 table 'nope'; expected one of s002_attacks, s002_optimum, s002_space$"):
        rb.seed_table('nope')
