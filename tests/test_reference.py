"Reference data transcribed from the thesis (seed 000): shapes, spot values checked against the seed text, `thesis_table`."
import pytest
import os, re
from pathlib import Path
from trustnas_nb.reference import (REFERENCE, thesis_table, TABLE_1_1, TABLE_1_3, TABLE_1_4, TABLE_1_5, TABLE_1_6,
                                   ANOVA_1, RUNTIME_1, DSRNA_CB_SHORT, TABLE_4_1, TABLE_4_2, TABLE_4_3, TABLE_4_4,
                                   TABLE_4_5, TABLE_4_6, TABLE_4_7, TABLE_4_8, TABLE_4_9, TABLE_4_10, TABLE_4_11,
                                   TABLE_4_12, TABLE_4_13, TABLE_2_1, TABLE_2_2, TABLE_2_3, TABLE_2_4, TABLE_2_5,
                                   TABLE_2_6, TABLE_2_7, TABLE_2_8, TABLE_2_9, TABLE_2_10, TABLE_2_11)

SHAPES = {'table1_1': (7, 15), 'table1_2': (20, 6), 'table1_3': (5, 14), 'table1_4': (6, 13), 'table1_5': (2, 6),
          'table1_6': (2, 6), 'table1_7': (4, 9), 'anova1': (3, 3), 'runtime1': (4, 3), 'dsrna_cb_short': (1, 8),
          'table4_1': (36, 9), 'table4_2': (33, 5), 'table4_3': (10, 5), 'table4_4': (5, 9), 'table4_5': (8, 7),
          'table4_7': (6, 7), 'table4_6': (12, 12), 'table4_8': (6, 5), 'table4_9': (4, 3), 'table4_10': (14, 6),
          'table4_11': (4, 4), 'table4_12': (4, 4), 'table4_13': (6, 5),
          'table2_1': (6, 7), 'table2_2': (4, 7), 'table2_3': (21, 5), 'table2_4': (9, 11), 'table2_5': (6, 6),
          'table2_6': (4, 4), 'table2_7': (4, 4), 'table2_8': (4, 3), 'table2_9': (6, 3), 'table2_10': (4, 5),
          'table2_11': (13, 6),
          'table3_2': (34, 9), 'table3_3': (17, 9), 'table3_4': (3, 6), 'table3_5': (3, 6), 'table3_6': (3, 6)}
DSRNA_LABELS = ['RobNet-large', 'RobNet-free', 'SDARTS-ADV', 'PC-DARTS-ADV', 'DSRNA-CB', 'DSRNA-Jacobian', 'DSRNA-Combined']


def cell(name, row, col, key=None):
    t = REFERENCE[name]
    key = key or t['columns'][0]
    r = next(r for r in t['rows'] if r[t['columns'].index(key)] == row)
    return r[t['columns'].index(col)]


def test_registry_and_rows_match_columns():
    assert set(REFERENCE) == set(SHAPES)
    for name, t in REFERENCE.items():
        assert all(len(r) == len(t['columns']) for r in t['rows']), name
        assert t['source'].startswith('thesis'), name


@pytest.mark.parametrize('name', sorted(SHAPES))
def test_thesis_table_shapes_and_prefix(name):
    df = thesis_table(name)
    assert df.shape == SHAPES[name]
    key = REFERENCE[name].get('key', (REFERENCE[name]['columns'][0],))
    assert [c for c in df.columns if not c.startswith('thesis_')] == list(key)
    assert all(c.startswith('ours ') or c in key for c in thesis_table(name, prefix='ours ').columns)


def test_unknown_name():
    with pytest.raises(ValueError, match='unknown reference table'): thesis_table('table9_9')


def test_table1_1_cifar_attacks():
    assert [r[0] for r in TABLE_1_1['rows']] == DSRNA_LABELS
    assert TABLE_1_1['columns'][1:5] == ('pgd10', 'pgd10_std', 'pgd20', 'pgd20_std')
    assert cell('table1_1', 'RobNet-large', 'pgd10') == 49.49 and cell('table1_1', 'RobNet-free', 'fgsm') == 58.38
    assert cell('table1_1', 'RobNet-free', 'cw_std') is None                      # L410: no std
    assert cell('table1_1', 'SDARTS-ADV', 'pgd10') == 56.94 and cell('table1_1', 'SDARTS-ADV', 'pgd10_std') == 0.02
    assert cell('table1_1', 'PC-DARTS-ADV', 'autoattack_l2') == 40.57 and cell('table1_1', 'PC-DARTS-ADV', 'autoattack_l2_std') == 0.21
    assert cell('table1_1', 'DSRNA-CB', 'cw') == 63.01 and cell('table1_1', 'DSRNA-CB', 'pgd100_std') == 0.24
    assert cell('table1_1', 'DSRNA-Jacobian', 'autoattack_l2') == 62.09
    assert cell('table1_1', 'DSRNA-Combined', 'pgd20') == 61.06 and cell('table1_1', 'DSRNA-Combined', 'autoattack_linf') == 59.83


def test_table1_3_imagenet():
    assert [r[0] for r in TABLE_1_3['rows']] == ['RobNet-large', 'SDARTS-ADV', 'PC-DARTS-ADV', 'DSRNA-CB', 'DSRNA-Jacobian']
    assert TABLE_1_3['dataset'] == 'ImageNet' and TABLE_1_3['columns'][-1] == 'params_m'
    assert cell('table1_3', 'RobNet-large', 'clean') == 61.26 and cell('table1_3', 'RobNet-large', 'params_m') == 11.6
    assert cell('table1_3', 'PC-DARTS-ADV', 'pgd100') == 46.59 and cell('table1_3', 'PC-DARTS-ADV', 'pgd100_std') == 0.15
    assert cell('table1_3', 'DSRNA-CB', 'autoattack_l2') == 42.98 and cell('table1_3', 'DSRNA-CB', 'autoattack_l2_std') == 0.16
    assert cell('table1_3', 'DSRNA-Jacobian', 'clean') == 75.88 and cell('table1_3', 'DSRNA-Jacobian', 'params_m') == 5.3


def test_table1_4_mnist():
    assert [r[0] for r in TABLE_1_4['rows']][-1] == 'DSRNA-Combined' and 'params_m' not in TABLE_1_4['columns']
    assert TABLE_1_4['columns'] == TABLE_1_3['columns'][:-1]
    assert cell('table1_4', 'RobNet-large', 'autoattack_l2') == 65.07
    assert cell('table1_4', 'SDARTS-ADV', 'cw') == 78.94 and cell('table1_4', 'SDARTS-ADV', 'cw_std') == 0.05
    assert cell('table1_4', 'DSRNA-CB', 'autoattack_linf') == 97.01
    assert cell('table1_4', 'DSRNA-Combined', 'clean') == 99.40 and cell('table1_4', 'DSRNA-Combined', 'fgsm_std') == 0.04
    assert ('DSRNA-Combined', 'fgsm') in TABLE_1_4['marks']['underline']


def test_tables1_5_1_6_certified_bounds():
    cols = ('dataset', 'RobNet-large', 'SDARTS-ADV', 'PC-DARTS-ADV', 'DSRNA-CB', 'DSRNA-Jacobian')
    assert TABLE_1_5['columns'] == cols == TABLE_1_6['columns']
    assert [r[0] for r in TABLE_1_5['rows']] == ['MNIST', 'CIFAR-10'] == [r[0] for r in TABLE_1_6['rows']]
    assert cell('table1_5', 'MNIST', 'DSRNA-CB') == 0.0526 and cell('table1_5', 'CIFAR-10', 'RobNet-large') == 0.0024
    assert cell('table1_6', 'MNIST', 'DSRNA-Jacobian') == 0.4285 and cell('table1_6', 'CIFAR-10', 'SDARTS-ADV') == 0.0337
    df = thesis_table('table1_6').set_index('dataset')
    assert df.loc['CIFAR-10', 'thesis_PC-DARTS-ADV'] == 0.0336


def test_anova_runtime_short():
    assert ANOVA_1['columns'] == ('dataset', 'p_value', 'statistic')
    assert cell('anova1', 'CIFAR-10', 'p_value') == 0.008 and cell('anova1', 'CIFAR-10', 'statistic') == 4.120
    assert cell('anova1', 'ImageNet', 'statistic') == 11.262 and cell('anova1', 'MNIST', 'p_value') == 0.002
    assert RUNTIME_1['columns'] == ('dataset', 'method', 'gpu_days')
    rt = thesis_table('runtime1').set_index(['dataset', 'method'])['thesis_gpu_days']
    assert rt['CIFAR-10', 'DSRNA-CB'] == 4 and rt['CIFAR-10', 'DSRNA-Jacobian'] == 0.4
    assert rt['MNIST', 'DSRNA-CB'] == 1 and rt['MNIST', 'DSRNA-Jacobian'] == 0.2
    # Table 1.2's search costs agree with the runtime sentence (L536)
    assert cell('table1_2', 'DSRNA-CB', 'search_cost_gpu_days') == rt['CIFAR-10', 'DSRNA-CB']
    s = thesis_table('dsrna_cb_short').iloc[0]
    assert s['method'] == 'DSRNA-CB' and s['thesis_batch_size'] == 64 and s['thesis_search_cost_gpu_days'] == 0.5
    assert (s['thesis_pgd100'], s['thesis_fgsm'], s['thesis_cw'], s['thesis_clean']) == (57.82, 65.94, 62.35, 97.37)
    assert DSRNA_CB_SHORT['dataset'] == 'CIFAR-10'


# ---- chapter 4 (SANAS image tables) ----

CH4 = ['table4_1', 'table4_2', 'table4_3', 'table4_4', 'table4_5', 'table4_7']
BASES, KINDS = {'darts2nd', 'pcdarts', 'prdarts', 'pdarts', None}, {'plain', 'ec', 'cdep', 'gmpgc', 'sanas', None}


def col(name, c):
    t = REFERENCE[name]; return [r[t['columns'].index(c)] for r in t['rows']]


def test_ch4_structure():
    for name in CH4:
        t = REFERENCE[name]
        assert all(len(r) == len(t['columns']) for r in t['rows']), name
        keys = [tuple(r[t['columns'].index(k)] for k in t.get('key', t['columns'][:1])) for r in t['rows']]
        assert len(set(keys)) == len(keys), name                                  # the key identifies a row
        assert len(set(r[0] for r in t['rows'])) == len(t['rows']), name           # so does the label alone
        assert all(r in [x[0] for x in t['rows']] for r, _ in t['marks']['bold']), name
        assert all(c in t['columns'] for _, c in t['marks']['bold']), name
        if 'base' in t['columns']: assert set(col(name, 'base')) <= BASES, name
        if 'kind' in t['columns']: assert set(col(name, 'kind')) <= KINDS, name
    # every block of Tables 4.1-4.3 has the five kinds, in the printed order
    for name, bases in (('table4_1', ['darts2nd', 'pcdarts', 'prdarts', 'pdarts']), ('table4_2', ['darts2nd', 'pdarts', 'pcdarts']),
                        ('table4_3', ['darts2nd', 'pdarts'])):
        rows = [(b, k) for b, k in zip(col(name, 'base'), col(name, 'kind')) if b]
        assert rows == [(b, k) for b in bases for k in ('plain', 'ec', 'cdep', 'gmpgc', 'sanas')], name
    assert TABLE_4_1['columns'] == ('method', 'base', 'kind', 'c100_error', 'c100_error_std', 'c10_error', 'c10_error_std',
                                    'params_m', 'cost_gpu_days')
    assert TABLE_4_4['columns'] == ('reweighting', 'c100_darts', 'c100_darts_std', 'c100_pdarts', 'c100_pdarts_std',
                                    'c10_darts', 'c10_darts_std', 'c10_pdarts', 'c10_pdarts_std')


def test_table4_1_spot():
    assert cell('table4_1', 'ResNet', 'c100_error') == 22.10 and cell('table4_1', 'ResNet', 'cost_gpu_days') is None  # L1574
    assert cell('table4_1', 'PNAS', 'c10_error_std') == 0.09 and cell('table4_1', 'PNAS', 'cost_gpu_days') == 150  # L1576
    assert cell('table4_1', 'R-DARTS', 'params_m') is None and cell('table4_1', 'R-DARTS', 'c100_error_std') == 0.26  # L1580
    assert cell('table4_1', 'GAEA', 'c100_error') is None and cell('table4_1', 'GAEA', 'c10_error') == 2.50      # L1588
    assert cell('table4_1', 'EC-darts2nd', 'c100_error') == 20.05 and cell('table4_1', 'EC-darts2nd', 'c10_error_std') == 0.12
    assert cell('table4_1', 'Ours-darts2nd', 'c100_error') == 16.42 and cell('table4_1', 'Ours-darts2nd', 'cost_gpu_days') == 4.6
    assert cell('table4_1', 'GMPGC-pcdarts', 'c100_error_std') == 0.09 and cell('table4_1', 'Ours-pcdarts', 'c10_error') == 2.49
    assert cell('table4_1', 'Ours-prdarts', 'c10_error') == 2.30 and cell('table4_1', 'CDEP-prdarts', 'cost_gpu_days') == 1.3
    assert cell('table4_1', 'Ours-pdarts', 'c100_error') == 15.16 and cell('table4_1', 'GMPGC-pdarts', 'params_m') == 3.7
    df = thesis_table('table4_1')
    assert df[(df.base == 'pcdarts') & (df.kind == 'plain')]['thesis_c100_error'].item() == 17.96
    assert df[df.base.isna()].shape[0] == 16 and list(df.columns[:3]) == ['method', 'base', 'kind']


def test_ch4_bold_where_printed():
    b41 = set(TABLE_4_1['marks']['bold'])
    assert b41 == {(f'Ours-{b}', c) for b in ('darts2nd', 'pcdarts', 'prdarts') for c in ('c100_error', 'c10_error')} | {('Ours-pdarts', 'c10_error')}
    assert ('Ours-pdarts', 'c100_error') not in b41                               # L1609: 15.16 printed plain
    # the bold cells are the best of their block (errors: lowest)
    for (m, c) in b41:
        base = cell('table4_1', m, 'base')
        assert cell('table4_1', m, c) == min(r[TABLE_4_1['columns'].index(c)] for r in TABLE_4_1['rows'] if r[1] == base)
    assert TABLE_4_2['marks']['bold'] == []
    assert set(TABLE_4_3['marks']['bold']) == {('SANAS-darts2nd', 'rating'), ('SANAS-pdarts', 'rating')}
    for m, _ in TABLE_4_3['marks']['bold']:                                       # highest rating of its block
        assert cell('table4_3', m, 'rating') == max(r[3] for r in TABLE_4_3['rows'] if r[1] == cell('table4_3', m, 'base'))
    assert set(TABLE_4_4['marks']['bold']) == {('Product', 'c100_darts'), ('Product', 'c10_darts'), ('Product', 'c10_pdarts')}
    assert set(TABLE_4_5['marks']['bold']) == {('AA+darts', 'c100_error'), ('AA+darts', 'c10_error'), ('AA+pdarts', 'c10_error')}
    assert set(TABLE_4_7['marks']['bold']) == {(m, c) for m in ('Ours+darts', 'Ours+pdarts') for c in ('c100_error', 'c10_error')}


def test_table4_2_imagenet_and_001():
    assert cell('table4_2', 'Inception-v1', 'top5') == 10.1 and cell('table4_2', 'Sampling', 'top5') is None   # L1614, L1625
    assert cell('table4_2', 'DARTS⁻-ImageNet', 'top1') == 23.8 and cell('table4_2', 'ShuffleNet 2× (v2)', 'top1') == 25.1
    assert cell('table4_2', 'GMPGC-darts2nd-cifar10', 'top5') == 8.2 and cell('table4_2', 'CDEP-pcdarts-ImageNet', 'top1') == 23.9
    # the thesis' values are kept where 001 Table 3 disagrees (L1636/L1641/L1646 vs 001 L214/L218/L220)
    assert (cell('table4_2', 'SANAS-darts2nd-cifar10', 'top1'), cell('table4_2', 'SANAS-darts2nd-cifar10', 'top5')) == (24.8, 8.3)
    assert (cell('table4_2', 'SANAS-pdarts-cifar100', 'top1'), cell('table4_2', 'SANAS-pdarts-cifar100', 'top5')) == (23.8, 6.6)
    assert (cell('table4_2', 'SANAS-pcdarts-ImageNet', 'top1'), cell('table4_2', 'SANAS-pcdarts-ImageNet', 'top5')) == (22.2, 6.1)
    for m, c, thesis, supp, where in TABLE_4_2['supplement_001']:
        assert cell('table4_2', m, c) == thesis != supp and where.startswith('001 L')
    assert {m for m, *_ in TABLE_4_2['supplement_001']} == {'SANAS-darts2nd-cifar10', 'SANAS-pdarts-cifar100', 'SANAS-pcdarts-ImageNet'}
    assert any(k.startswith('⚠') and '001' in k for k in TABLE_4_2['footnotes'])
    assert 'params_m' not in TABLE_4_2['columns']                                 # the thesis prints only top-1/top-5


def test_table4_3_to_4_7_spot():
    assert cell('table4_3', 'Darts2nd', 'rating') == 3.30 and cell('table4_3', 'Darts2nd', 'rating_std') == 0.24   # L1669
    assert cell('table4_3', 'EC-pdarts', 'rating_std') == 0.21 and cell('table4_3', 'SANAS-pdarts', 'rating') == 4.07
    assert cell('table4_4', 'Addition', 'c100_darts') == 20.3 and cell('table4_4', 'Addition', 'c100_pdarts_std') == 0.03  # L1698
    assert cell('table4_4', 'Concatenate', 'c10_pdarts') == 2.61 and cell('table4_4', 'Absolute', 'c100_pdarts') == 15.4
    assert cell('table4_5', 'IG+darts', 'c100_error') == 16.92 and cell('table4_5', 'SG+pdarts', 'c10_error_std') == 0.04
    assert cell('table4_5', 'IG+pdarts', 'saliency') == 'ig' and cell('table4_5', 'Darts', 'base') == 'darts2nd'
    assert cell('table4_7', 'Separate+darts', 'c100_error') == 18.05 and cell('table4_7', 'MTL+pdarts', 'c10_error') == 2.52
    assert cell('table4_7', 'MTL+darts', 'variant') == 'mtl' and cell('table4_7', 'Ours+pdarts', 'variant') == 'end2end'


def test_ch4_cross_table_consistency():
    # SANAS rows agree across Tables 4.1, 4.5, 4.7; plain rows across 4.1 and 4.5
    for b, aa, ours in (('darts2nd', 'AA+darts', 'Ours+darts'), ('pdarts', 'AA+pdarts', 'Ours+pdarts')):
        for c in ('c100_error', 'c100_error_std', 'c10_error', 'c10_error_std'):
            assert cell('table4_1', f'Ours-{b}', c) == cell('table4_5', aa, c) == cell('table4_7', ours, c)
    for m41, m45 in (('Darts2nd', 'Darts'), ('Pdarts', 'Pdarts')):
        assert [cell('table4_1', m41, c) for c in ('c100_error', 'c10_error')] == [cell('table4_5', m45, c) for c in ('c100_error', 'c10_error')]
    # our reading of Table 4.4's garbled header: Product = AA rows of Table 4.5, No reweight = plain rows (rounded C100)
    for row, d, p in (('Product', 'AA+darts', 'AA+pdarts'), ('No reweight', 'Darts', 'Pdarts')):
        assert cell('table4_4', row, 'c100_darts') == round(cell('table4_5', d, 'c100_error'), 1)
        assert cell('table4_4', row, 'c100_pdarts') == round(cell('table4_5', p, 'c100_error'), 1)
        assert (cell('table4_4', row, 'c10_darts'), cell('table4_4', row, 'c10_pdarts')) == (cell('table4_5', d, 'c10_error'), cell('table4_5', p, 'c10_error'))
        assert cell('table4_4', row, 'c100_darts_std') == cell('table4_5', d, 'c100_error_std')
    assert any(k.startswith('⚠') for k in TABLE_4_4['footnotes'])


# ---- every chapter-4 cell against the seed text, where the seed is present ----

def _seed(name):
    for d in (os.environ.get('TRUSTNAS_SEEDS'), Path(__file__).resolve().parents[1] / 'shared' / 'seeds', '/work/shared/seeds'):
        if d and (Path(d) / name).exists(): return (Path(d) / name).read_text(encoding='utf-8').split('\n')
    pytest.skip(f'seed {name} not available')


def _parse_cell(s):
    s = s.strip()
    if s == '-': return None, None, False
    bold = '<b>' in s
    s = re.sub(r'</?b>|\$|[{}]|\s', '', s).replace('\\pm', '±')
    m = re.fullmatch(r'(\d+(?:\.\d+)?)(?:±(\d+(?:\.\d+)?))?', s)
    assert m, s
    return float(m[1]), (float(m[2]) if m[2] else None), bold


def _parse_label(s):
    s = re.sub(r'\s*\[\d+\]', '', s).replace(' (ours)', '').replace('$2 \\times (v2)$', '2× (v2)')
    return re.sub(r'\s*<sup>-</sup>\s*', '⁻', s).strip()


# table: (first line, last line, value columns in print order (a `*_std` column follows its value when the table has one))
_LAYOUT = {'table4_1': (1574, 1609, ['c100_error', 'c10_error', 'params_m', 'cost_gpu_days']),
           'table4_2': (1614, 1646, ['top1', 'top5']),
           'table4_3': (1669, 1678, ['rating']),
           'table4_4': (1697, 1701, ['c100_darts', 'c100_pdarts', 'c10_darts', 'c10_pdarts']),
           'table4_5': (1715, 1722, ['c100_error', 'c10_error']),
           'table4_7': (1761, 1766, ['c100_error', 'c10_error'])}


@pytest.mark.parametrize('name', sorted(_LAYOUT))
def test_ch4_every_cell_against_seed(name):
    text = _seed('000_892f9ccbf8943374.txt')
    a, b, cols = _LAYOUT[name]
    t = REFERENCE[name]
    assert len(t['rows']) == b - a + 1
    bold = []
    for n, row in zip(range(a, b + 1), t['rows']):
        parts = [p for p in text[n - 1].split('\t')]
        parts = [p for p in parts[1:] if p.strip()]
        assert _parse_label(text[n - 1].split('\t')[0]) == row[0], (n, row[0])
        assert len(parts) == len(cols), n
        for c, p in zip(cols, parts):
            v, sd, bd = _parse_cell(p)
            assert row[t['columns'].index(c)] == v, (n, c)
            if f'{c}_std' in t['columns']: assert row[t['columns'].index(f'{c}_std')] == sd, (n, c)
            else: assert sd is None, (n, c)
            if bd: bold.append((row[0], c))
    assert sorted(bold) == sorted(t['marks']['bold'])


def test_table4_2_disagreements_against_001():
    text = '\n'.join(_seed('001_3f71b4c0f2d24aee.txt'))
    for m, c, thesis, supp, where in TABLE_4_2['supplement_001']:
        n = int(where.split('L')[1])
        line = text.split('\n')[n - 1]
        assert line.startswith('Ours-') and m.split('-')[1].lower() in line.lower()
        vals = [float(x) for x in line.split('\t')[1:3]]
        assert vals[('top1', 'top5').index(c)] == supp



# ---- chapter 4: text (Table 4.6, salient words 4.8 / 4.13) and brain tumours (Tables 4.9-4.12) ----

CH4_MORE = ['table4_6', 'table4_8', 'table4_9', 'table4_10', 'table4_11', 'table4_12', 'table4_13']
SEED_000 = '000_892f9ccbf8943374.txt'


def row(name, **kv):
    "The one row of table `name` whose columns equal `kv`, as a dict."
    t = REFERENCE[name]
    hits = [dict(zip(t['columns'], r)) for r in t['rows'] if all(r[t['columns'].index(k)] == v for k, v in kv.items())]
    assert len(hits) == 1, (name, kv, len(hits))
    return hits[0]


def test_ch4_more_structure():
    for name in CH4_MORE:
        t = REFERENCE[name]
        assert t['source'].startswith(f"thesis Table {name[5]}.{name[7:]} (seed 000, L"), name
        key = t.get('key', t['columns'][:1])
        assert list(t['columns'][:len(key)]) == list(key), name                   # key columns come first
        keys = [tuple(r[t['columns'].index(k)] for k in key) for r in t['rows']]
        assert len(set(keys)) == len(keys), name
        assert t['marks']['bold'] == [], name                                     # nothing bold in these tables
        if 'base' in t['columns']: assert set(col(name, 'base')) <= {'adabert', 'darts', 'pcdarts', 'pdarts', None}, name
        if 'kind' in t['columns']: assert set(col(name, 'kind')) <= KINDS, name
        assert any(k.startswith('⚠') for k in t.get('footnotes', {})) or name == 'table4_9', name
    assert TABLE_4_6['columns'] == ('method', 'base', 'kind', 'params_m', 'infer_speedup', 'sst2', 'mrpc', 'qqp', 'mnli',
                                    'qnli', 'rte', 'average')
    assert TABLE_4_6['tasks'] == ('sst2', 'mrpc', 'qqp', 'mnli', 'qnli', 'rte')
    assert [(b, k) for b, k in zip(col('table4_6', 'base'), col('table4_6', 'kind')) if b] == \
        [('adabert', k) for k in ('plain', 'ec', 'cdep', 'gmpgc', 'sanas')]
    for name in ('table4_8', 'table4_13'):
        t = REFERENCE[name]
        assert t['columns'] == ('example', 'method', 'sentiment', 'sentence', 'salient_words') and t['key'] == ('example', 'method')
        assert [(r[0], r[1]) for r in t['rows']] == [(e, m) for e in (1, 2) for m in ('EC', 'GMPGC', 'Ours')]
        assert all(w is None or (isinstance(w, tuple) and len(w) == 2) for w in col(name, 'salient_words'))   # top-2 or lost
    assert TABLE_4_9['columns'] == ('tumor_type', 'train_images', 'test_images')
    assert TABLE_4_10['columns'] == ('method', 'base', 'kind', 'gamma', 'accuracy', 'params_m')
    assert TABLE_4_11['columns'] == ('method', 'base', 'arch_objective', 'accuracy')
    assert TABLE_4_12['columns'] == ('method', 'base', 'audience', 'accuracy') and TABLE_4_12['reconstructed'] is True


def test_table4_6_spot():
    assert row('table4_6', method='BERT_12')['params_m'] == 109 and row('table4_6', method='BERT_12')['infer_speedup'] == 1  # L1733
    assert row('table4_6', method='BERT_3-PKD')['rte'] == 58.2 and row('table4_6', method='DistilBERT_4')['average'] == 76.8
    b = row('table4_6', method='BiLSTM_SOFT')                                     # L1739: '-' cells
    assert (b['mrpc'], b['qnli'], b['rte'], b['average']) == (None, None, None, None) and b['mnli'] == 73.0
    assert row('table4_6', method='AdaBERT')['infer_speedup'] == 16.1 and row('table4_6', method='CDEP-AdaBERT')['sst2'] == 92.5
    o = row('table4_6', method='Ours-AdaBERT')
    assert (o['params_m'], o['infer_speedup'], o['qqp'], o['average']) == (8.2, 16.3, 71.8, 81.8)   # L1744
    # L1776: Ours-AdaBERT beats AdaBERT and the EC/CDEP/GMPGC variants on every task
    for m in ('AdaBERT', 'EC-AdaBERT', 'CDEP-AdaBERT', 'GMPGC-AdaBERT'):
        assert all(o[c] > row('table4_6', method=m)[c] for c in TABLE_4_6['tasks']), m


def test_table4_6_average_vs_mean_of_tasks():
    "The printed Average against the mean of the six tasks: reported, and any disagreement must be a ⚠ footnote."
    report, disagree = [], []
    for r in TABLE_4_6['rows']:
        d = dict(zip(TABLE_4_6['columns'], r))
        vals = [d[c] for c in TABLE_4_6['tasks']]
        if None in vals:
            assert d['average'] is None, d['method']                              # no average printed without all six
            continue
        mean = sum(vals) / 6
        report.append((d['method'], d['average'], round(mean, 3)))
        if abs(d['average'] - mean) > 0.05 + 1e-9: disagree.append(d['method'])
    print('\nTable 4.6 average vs mean of the six tasks:', *(f'{m}: {a} vs {x}' for m, a, x in report), sep='\n  ')
    assert len(report) == 11
    notes = ' '.join(v for k, v in TABLE_4_6['footnotes'].items() if k.startswith('⚠'))
    assert all(m in notes for m in disagree), disagree                            # the thesis agrees: nothing to note
    assert disagree == []


def _glue_label(s):
    return re.sub(r'\s*<sub>(\w+)</sub>\s*', r'_\1', s).strip()


def test_table4_6_every_cell_against_seed():
    text = _seed(SEED_000)
    assert text[1731].split('\t') == ['Method', '# Param.', 'Infer', 'SST-2', 'MRPC', 'QQP', 'MNLI', 'QNLI', 'RTE', 'Average']
    assert text[1745].strip() == '**Table 4.6.** Results on the GLUE benchmark.'
    assert len(TABLE_4_6['rows']) == 1744 - 1733 + 1
    for n, r in zip(range(1733, 1745), TABLE_4_6['rows']):
        parts = text[n - 1].split('\t')
        assert _glue_label(parts[0]) == r[0], n
        assert parts[1].endswith('M') and float(parts[1][:-1]) == r[3], n
        assert parts[2].endswith('x') and float(parts[2][:-1]) == r[4], n
        assert [None if p == '-' else float(p) for p in parts[3:]] == list(r[5:]), n


def _sentences(text, a, b):
    "(method, sentence) rows of a salient-word table: a row starts with 'METHOD\t', a continuation line with '\t'."
    out = []
    for line in text[a - 1:b]:
        head, _, rest = line.partition('\t')
        if head: out.append([head, rest.strip()])
        else: out[-1][1] += ' ' + rest.strip()
    return [tuple(x) for x in out]


@pytest.mark.parametrize('name', ['table4_8', 'table4_13'])
def test_salient_sentences_against_seed(name):
    text = _seed(SEED_000)
    t = REFERENCE[name]
    got = []
    for e, (a, b) in sorted(t['seed_lines'].items()):
        rows = _sentences(text, a, b)
        assert [m for m, _ in rows] == ['EC', 'GMPGC', 'Ours'], (name, e)
        got += [(e, m, s) for m, s in rows]
    assert got == [(r[0], r[1], r[3]) for r in t['rows']]
    cap = {'table4_8': 1812, 'table4_13': 1940}[name]
    assert 'Top-2 salient words (marked with red color)' in text[cap - 1] and f'Table {name[5]}.{name[7:]}.' in text[cap - 1]
    # every named word is in its example's sentence
    for e, w, _, where in t['prose_words']:
        assert re.search(rf'\b{w}\b', next(r[3] for r in t['rows'] if r[0] == e)), w
        assert f'"{w}"' in text[int(where[1:]) - 1], (w, where)
    for r in t['rows']:
        if r[4]: assert all(re.search(rf'\b{w}\b', r[3]) for w in r[4])


def test_salient_words_only_where_the_prose_names_them():
    text = _seed(SEED_000)
    sw = {(r[0], r[1]): r[4] for r in TABLE_4_8['rows']}
    assert sw.pop((1, 'Ours')) == ('entertaining', 'please') and set(sw.values()) == {None}    # the others are lost
    assert '"entertaining" and "please"' in text[1783] and 'two baselines fail' in text[1783]   # L1784
    assert 'positive' in text[1783] and [r[2] for r in TABLE_4_8['rows']] == ['positive'] * 3 + [None] * 3
    assert 'Table 4.8' in text[1933] and '"mix"' in text[1933] and 'neutral' in text[1933]    # L1934 names Table 4.8
    assert {w for _, w, _, _ in TABLE_4_8['prose_words']} == {'entertaining', 'please', 'mix'}
    assert all(r[4] is None and r[2] is None for r in TABLE_4_13['rows']) and TABLE_4_13['prose_words'] == []
    assert not any(w in s for w in ('entertaining', 'mix') for s in {r[3] for r in TABLE_4_13['rows']})
    for t in (TABLE_4_8, TABLE_4_13): assert '⚠ red lost' in t['footnotes']
    # the accessor: text cells, tuples of words, None for lost marks
    df = thesis_table('table4_8').set_index(['example', 'method'])
    assert list(df.columns) == ['thesis_sentiment', 'thesis_sentence', 'thesis_salient_words']
    assert df.loc[(1, 'Ours'), 'thesis_salient_words'] == ('entertaining', 'please')
    assert df['thesis_salient_words'].isna().sum() == 5 and thesis_table('table4_13')['thesis_salient_words'].isna().all()
    assert df.loc[(2, 'EC'), 'thesis_sentence'].startswith('a very witty take')


def test_table4_13_against_001():
    text = _seed('001_3f71b4c0f2d24aee.txt')
    assert text[56].startswith('Table 1: Top-2 salient words (marked with red color)')
    assert [(e, m) for e, m, *_ in TABLE_4_13['supplement_001']] == [(r[0], r[1]) for r in TABLE_4_13['rows']]
    norm = lambda s: s.replace('’', "'").replace(' ,', ',').replace(' .', '.')
    for (e, m, s001, where), r in zip(TABLE_4_13['supplement_001'], TABLE_4_13['rows']):
        line = text[int(where.split('L')[1]) - 1]
        assert line == f'{m}\t{s001}', where
        assert norm(s001) == r[3], where                                          # same sentence up to typography
    spaced = [(e, m) for e, m, s, _ in TABLE_4_13['supplement_001'] if ' ,' in s or ' .' in s]
    assert spaced == [(1, 'GMPGC')] and '⚠ 001 spaces' in TABLE_4_13['footnotes']


def test_table4_9_against_seed_and_totals():
    text = _seed(SEED_000)
    assert text[1837] == '**Table 4.9.** Number of training and test images per class'
    assert text[1839].split('\t') == ['Tumor Type', 'Number of Training Images', 'Number of Test Images']
    for n, r in zip(range(1841, 1845), TABLE_4_9['rows']):
        assert text[n - 1].split('\t') == [r[0], str(r[1]), str(r[2])], n
    tr, te = sum(col('table4_9', 'train_images')), sum(col('table4_9', 'test_images'))
    assert (tr, te, tr + te) == (2870, 394, 3264) == tuple(TABLE_4_9['totals'].values())
    assert 'training set with 2870 images and a test set with 394 images' in text[1835] and '3264 MRI images' in text[1833]
    assert row('table4_9', tumor_type='Healthy')['train_images'] == 395 and row('table4_9', tumor_type='Pituitary')['test_images'] == 74


def _brain_label(s):
    "'SANAS+PCDARTS ( $\\gamma = 0.1$ )' -> ('SANAS+PCDARTS', 0.1); other labels -> (label, None)."
    m = re.fullmatch(r'(.+?) \( \$\\gamma = ([\d.]+)\$ \)', s)
    return (m[1], float(m[2])) if m else (s, None)


def test_table4_10_against_seed():
    text = _seed(SEED_000)
    assert text[1853].split('\t') == ['Method', 'Accuracy (%)', 'Parameters (M)']
    assert text[1869].strip().startswith('Table 4.10.')
    assert len(TABLE_4_10['rows']) == 1868 - 1855 + 1
    for n, r in zip(range(1855, 1869), TABLE_4_10['rows']):
        lab, acc, par = text[n - 1].split('\t')
        assert _brain_label(lab) == (r[0], r[3]), n
        assert (float(acc), float(par)) == (r[4], r[5]), n
    assert row('table4_10', method='SANAS+PCDARTS', gamma=0.1)['accuracy'] == 89.60
    assert row('table4_10', method='ResNet101')['params_m'] == 42.56 and row('table4_10', method='DenseNet40')['accuracy'] == 83.5
    # bases and kinds pair each NAS method with its SANAS version
    for b in ('darts', 'pcdarts', 'pdarts'):
        assert {r['kind'] for r in (dict(zip(TABLE_4_10['columns'], x)) for x in TABLE_4_10['rows']) if r['base'] == b} == {'plain', 'sanas'}
    # the prose's numbers (L1820, L1872, L1882)
    s, r101 = row('table4_10', method='SANAS+DARTS'), row('table4_10', method='ResNet101')
    for n in (1820, 1872):
        assert f"{round(s['accuracy'], 1)}% with {s['params_m']}M" in text[n - 1]
        assert f"{round(r101['accuracy'], 1)}% with {r101['params_m']}M" in text[n - 1]
    assert f"from {row('table4_10', method='DARTS')['accuracy']}% to {s['accuracy']}%" in text[1881]
    assert s['accuracy'] == max(col('table4_10', 'accuracy'))                     # L1872: highest of all methods
    # gamma: L1848 says 1, the table's best is 0.1 (recorded as ⚠)
    assert 'set the tradeoff parameter  $\\gamma$  to 1' in text[1847]
    g = {r[3]: r[4] for r in TABLE_4_10['rows'] if r[3] is not None}
    assert max(g, key=g.get) == 0.1 and '⚠ gamma' in TABLE_4_10['footnotes']
    assert row('table4_10', method='PCDARTS')['accuracy'] < min(g.values())       # L1898: every gamma > 0 beats vanilla


def test_table4_11_against_seed_and_table4_10():
    text = _seed(SEED_000)
    assert text[1873].split('\t') == list(TABLE_4_11['printed_header']) == ['Method', 'Error (%)']
    for n, r in zip(range(1875, 1879), TABLE_4_11['rows']):
        assert text[n - 1].split('\t') == [r[0], f'{r[3]:.2f}'], n
    # the values are accuracies: the full-method rows are Table 4.10's SANAS+DARTS / SANAS+PDARTS
    for m, m10 in TABLE_4_11['same_as_table4_10'].items():
        assert row('table4_11', method=m)['accuracy'] == row('table4_10', method=m10)['accuracy']
        assert row('table4_11', method=m)['arch_objective'] == 'audience+explainer'
    # and L1884's "audience + explainer works better" holds only when larger is better
    for b in ('darts', 'pdarts'):
        assert row('table4_11', base=b, arch_objective='audience+explainer')['accuracy'] > \
               row('table4_11', base=b, arch_objective='audience')['accuracy']
    assert 'works better than "audience only"' in text[1883] and '⚠ header' in TABLE_4_11['footnotes']


def test_table4_12_reconstruction():
    text = _seed(SEED_000)
    assert text[1887] == 'Accuracy (%)' and text[1893].strip().startswith('Table 4.12.')
    assert tuple(float(text[n - 1]) for n in range(1889, 1893)) == TABLE_4_12['printed_values'] == tuple(col('table4_12', 'accuracy'))
    assert [(r[1], r[2]) for r in TABLE_4_12['rows']] == [('darts', 'VGGNet13'), ('darts', 'ResNet18'),
                                                          ('pdarts', 'VGGNet13'), ('pdarts', 'ResNet18')]
    # the ResNet18 rows are Table 4.10's SANAS rows (the main runs use a ResNet-18 audience, L1848)
    assert 'ResNet-18' in text[1847] and TABLE_4_10['audience'] == 'ResNet18'
    for (m, aud), m10 in TABLE_4_12['same_as_table4_10'].items():
        assert aud == 'ResNet18' and row('table4_12', method=m, audience=aud)['accuracy'] == row('table4_10', method=m10)['accuracy']
    # and the full method of Table 4.11
    assert row('table4_12', method='SANAS+DARTS', audience='ResNet18')['accuracy'] == \
           row('table4_11', method='Audience + explainer (SANAS+DARTS)')['accuracy']
    # L1896: ResNet18 beats VGGNet13 for both bases
    assert 'ResNet18 as the audience achieves better performance than using VGGNet13' in text[1895]
    for m in ('SANAS+DARTS', 'SANAS+PDARTS'):
        assert row('table4_12', method=m, audience='ResNet18')['accuracy'] > row('table4_12', method=m, audience='VGGNet13')['accuracy']
    # 88.83 is also SANAS+PCDARTS (gamma = 1): recorded, but L1896 names only DARTS and PDARTS
    assert row('table4_10', method='SANAS+PCDARTS', gamma=1.0)['accuracy'] == 88.83 and '⚠ 88.83' in TABLE_4_12['footnotes']
    # the VGGNet13 ablation is not Table 4.11's audience-only ablation
    assert [row('table4_12', method=m, audience='VGGNet13')['accuracy'] for m in ('SANAS+DARTS', 'SANAS+PDARTS')] != \
           [r[3] for r in TABLE_4_11['rows'] if r[2] == 'audience']


def test_ch4_more_accessor():
    b = thesis_table('table4_10')
    assert list(b.columns) == ['method', 'base', 'kind', 'gamma', 'thesis_accuracy', 'thesis_params_m']
    assert b.set_index(['method', 'gamma']).loc[('SANAS+PCDARTS', 0.5), 'thesis_params_m'].item() == 4.05
    g = thesis_table('table4_6', prefix='')
    assert g[g.kind == 'sanas'].method.item() == 'Ours-AdaBERT' and g['average'].isna().sum() == 1
    assert list(thesis_table('table4_12', prefix='ours ').columns) == ['method', 'base', 'audience', 'ours accuracy']
    assert thesis_table('table4_9').set_index('tumor_type').loc['Glioma', 'thesis_test_images'] == 100



# ---- chapter 2 (LBG / DALBG) ----

CH2 = ['table2_%d' % i for i in range(1, 12)]
CH2_KINDS = {'plain', 'deepmoe', 'mge-cnn', 'lbg', 'dalbg', 'ensemble'}


def test_ch2_registry_and_structure():
    assert set(CH2) <= set(REFERENCE) and all(n in SHAPES for n in CH2)
    for name in CH2:
        t = REFERENCE[name]
        assert t['source'].startswith(f'thesis Table {name[5]}.{name[7:]} (seed 000, L'), name
        key = t.get('key', t['columns'][:1])
        assert list(t['columns'][:len(key)]) == list(key), name
        keys = [tuple(r[t['columns'].index(k)] for k in key) for r in t['rows']]
        assert len(set(keys)) == len(keys), name
        if 'kind' in t['columns']: assert set(col(name, 'kind')) <= CH2_KINDS, name
        for c in t['columns']:                                                    # every *_std follows its value
            if c.endswith('_std'): assert t['columns'][t['columns'].index(c) - 1] == c[:-4], (name, c)
        a, b = t['seed_lines']; assert len(t['rows']) > 0 and a <= b, name
        df = thesis_table(name)
        assert df.shape == SHAPES[name] and [c for c in df.columns if not c.startswith('thesis_')] == list(key), name
    assert TABLE_2_4['columns'] == ('method', 'base', 'kind', 'c100_error', 'c100_error_std', 'c100_params_m',
                                    'c100_cost_gpu_days', 'c10_error', 'c10_error_std', 'c10_params_m', 'c10_cost_gpu_days')
    assert TABLE_2_11['columns'] == ('task', 'metric', 'BERT', 'LBG-BERT', 'RoBERTa', 'LBG-RoBERTa')
    # the ⚠ notes this transcription relies on
    for t, k in ((TABLE_2_1, '⚠ marks'), (TABLE_2_4, '⚠ DARTS order'), (TABLE_2_5, '⚠ SOTA claim'), (TABLE_2_7, '⚠ base'),
                 (TABLE_2_9, '⚠ Cyrillic'), (TABLE_2_10, '⚠ three models'), (TABLE_2_11, '⚠ WNLI'), (TABLE_2_3, '⚠ no std')):
        assert k in t['footnotes'], k


def _ch2_cell(s):
    "'<u>17.02</u>' / '$18.02 \\pm 0.36$' / '<b>18.02</b> ±0.36' -> (value, std, bold, underline)."
    u = '<u>' in s
    v, sd, bd = _parse_cell(re.sub(r'</?u>', '', s))
    return v, sd, bd, u


def _ch2_label(s):
    s = re.sub(r'\s*\[\d+\]', '', s).replace(' (ours)', '').strip()
    m = re.fullmatch(r'(.+?) with \$\\(lambda|K) = ([\d.]+)\$', s.replace('$K', '$\\K'))
    if m: return (m[1], float(m[3]) if m[2] == 'lambda' else int(m[3]))
    return (s,)


# name: (header line, value columns in print order; a `*_std` column is filled from the same cell)
_CH2_LAYOUT = {
    'table2_1': (871, ['error', 'dp', 'deo', 'arch']),
    'table2_2': (887, ['error', 'spd', 'eod', 'aod']),
    'table2_4': (931, ['c100_error', 'c100_params_m', 'c100_cost_gpu_days', 'c10_error', 'c10_params_m', 'c10_cost_gpu_days']),
    'table2_5': (964, ['top1', 'top5', 'params_m']),
    'table2_6': (984, ['error', 'deo']),
    'table2_7': (996, ['error', 'deo']),
    'table2_8': (1010, ['error', 'deo']),
    'table2_10': (1120, ['error']),
}


@pytest.mark.parametrize('name', sorted(_CH2_LAYOUT))
def test_ch2_every_cell_against_seed(name):
    text = _seed(SEED_000)
    hdr, cols = _CH2_LAYOUT[name]
    t = REFERENCE[name]
    a, b = t['seed_lines']
    assert len(t['rows']) == b - a + 1 and text[hdr - 1].split('\t')[0] in ('Method', 'Methods')
    nlab = 2 if 'lam' in t['columns'] or 'K' in t['columns'] else 1
    bold, under = [], []
    for n, r in zip(range(a, b + 1), t['rows']):
        parts = text[n - 1].split('\t')
        assert _ch2_label(parts[0]) == tuple(r[:nlab]), (n, parts[0])
        assert len(parts) - 1 == len(cols), n
        for c, p in zip(cols, parts[1:]):
            if c == 'arch': assert p == r[t['columns'].index(c)], n; continue
            v, sd, bd, u = _ch2_cell(p)
            assert r[t['columns'].index(c)] == v, (n, c)
            if f'{c}_std' in t['columns']: assert r[t['columns'].index(f'{c}_std')] == sd, (n, c)
            else: assert sd is None, (n, c)
            if bd: bold.append((r[0], c))
            if u: under.append((r[0], c))
    assert sorted(bold) == sorted(t['marks']['bold'])
    assert sorted(under) == sorted(t['marks'].get('underline', []))
    cap = {'table2_4': 928, 'table2_8': 1008, 'table2_10': 1118}.get(name)
    for n in ([cap] if cap else range(b + 1, b + 4)):
        if f'Table {name[5]}.{name[7:]}.' in text[n - 1]: break
    else: raise AssertionError(f'no caption for {name}')


def test_table2_3_every_cell_against_seed():
    text = _seed(SEED_000)
    assert text[902].split('\t') == ['Dataset', 'Model', 'Error(%)'] and 'Table 2.3.' in text[925]
    a, b = TABLE_2_3['seed_lines']
    assert len(TABLE_2_3['rows']) == b - a + 1
    for n, r in zip(range(a, b + 1), TABLE_2_3['rows']):
        ds, model, err = text[n - 1].split('\t')
        assert (ds, model.replace(' (ours)', ''), float(err)) == (r[0], r[1], r[4]), n
        assert r[2] in model.lower() or r[2] == 'resnet56' and 'ResNet56' in model, n


def test_table2_11_every_cell_against_seed():
    text = _seed(SEED_000)
    assert text[1129].split('\t') == ['Corpus', 'BERT', 'LBG-BERT', 'RoBERTa', 'LBG-RoBERTa'] and 'Table 2.11.' in text[1140]
    rows = iter(TABLE_2_11['rows'])
    bold = []
    for n in range(1131, 1140):
        parts = text[n - 1].split('\t')
        task = parts[0].split(' (')[0]
        cells = [re.split(r'(?<!<)/', re.sub(r'\s', '', p)) for p in parts[1:]]     # '<b>90.9</b> /92.3'
        for i in range(len(cells[0])):
            r = next(rows)
            assert r[0] == task, n
            for j, m in enumerate(TABLE_2_11['columns'][2:]):
                c = cells[j][i]
                if '<b>' in c: bold.append(((r[0], r[1]), m))
                c = re.sub(r'</?b>', '', c)
                assert r[2 + j] == (None if c == '-' else float(c)), (n, m)
    assert next(rows, None) is None and sorted(bold) == sorted(TABLE_2_11['marks']['bold'])


def test_table2_9_against_seed():
    text = _seed(SEED_000)
    assert text[1027] == text[1028] == 'Table 2.9.\tNotations\tused\tin\tLBG' and text[1030] == 'Notation\tMeaning'
    a, b = TABLE_2_9['seed_lines']
    for n, r in zip(range(a, b + 1), TABLE_2_9['rows']):
        assert text[n - 1].split('\t') == [r[1], r[2]], n
    assert [ord(r[1]) for r in TABLE_2_9['rows'] if len(r[1]) == 1] == [0x422, 0x421]


def test_ch2_cross_table_consistency():
    "Rows the thesis repeats between chapter-2 tables (and the chapter-4 / L960 / L974 numbers they should agree with)."
    text = _seed(SEED_000)
    r21 = lambda m: (row('table2_1', method=m)['error'], row('table2_1', method=m)['deo'])
    assert r21('LBG-DARTS') == (row('table2_6', lam=0.0)['error'], row('table2_6', lam=0.0)['deo'])
    assert r21('DALBG-DARTS') == (row('table2_6', lam=0.1)['error'], row('table2_6', lam=0.1)['deo']) == \
        tuple(row('table2_8', method='DALBG-DARTS-MMD')[c] for c in ('error', 'deo'))
    assert r21('LBG-ResNet18') == (row('table2_7', K=2)['error'], row('table2_7', K=2)['deo'])
    assert r21('ResNet18') != (row('table2_7', K=1)['error'], row('table2_7', K=1)['deo']) and '⚠ K=1' in TABLE_2_7['footnotes']
    # Table 2.8: MMD best on both (L1006)
    assert min(col('table2_8', 'error')) == 15.22 == col('table2_8', 'error')[0] and min(col('table2_8', 'deo')) == 0.0891
    # Table 2.10's LBG rows are Table 2.4's
    for m10, m4 in (('LBG-DARTS-2nd', 'LBG-DARTS'), ('LBG-PDARTS', 'LBG-PDARTS')):
        assert (row('table2_10', method=m10)['error'], row('table2_10', method=m10)['error_std']) == \
               (row('table2_4', method=m4)['c100_error'], row('table2_4', method=m4)['c100_error_std'])
    # Table 2.4's DARTS is Table 4.1's Darts2nd (the ⚠ DARTS order note)
    d = row('table2_4', method='DARTS')
    assert (d['c100_error'], d['c100_error_std'], d['c10_error'], d['c10_error_std']) == (20.58, 0.44, 2.76, 0.09) == \
           tuple(row('table4_1', method='Darts2nd')[c] for c in ('c100_error', 'c100_error_std', 'c10_error', 'c10_error_std'))
    assert d['c100_cost_gpu_days'] == 1.5 != row('table4_1', method='Darts2nd')['cost_gpu_days']
    # prose L960 and L974
    assert '20.58%' in text[959] and '17.97%' in text[959] and 'from 17.96% to 16.21% and 17.49% to 16.46%' in text[959]
    assert row('table2_4', method='DALBG-DARTS')['c100_error'] == 17.97 and row('table2_4', method='LBG-PCDARTS')['c100_error'] == 16.21
    assert '1.8% lower top-1 error' in text[973]
    assert round(row('table2_5', method='DARTS-CIFAR10')['top1'] - row('table2_5', method='DALBG-DARTS-CIFAR10')['top1'], 1) == 1.8
    assert min(col('table2_5', 'top1')) > min(col('table4_2', 'top1'))           # ⚠ SOTA claim
    # Table 2.11: WNLI (L1153)
    w = row('table2_11', task='WNLI')
    assert (w['RoBERTa'], w['LBG-RoBERTa']) == (91.3, 86.3) and 'slightly better' in text[1152]
    assert row('table2_11', task='QQP', metric='f1')['RoBERTa'] is None


def test_ch2_accessor():
    t = thesis_table('table2_3').set_index(['dataset', 'model'])
    assert t.loc[('ImageNet', 'DALBG-Swin-T'), 'thesis_error'] == 16.64
    g = thesis_table('table2_11', prefix='ours ')
    assert list(g.columns) == ['task', 'metric', 'ours BERT', 'ours LBG-BERT', 'ours RoBERTa', 'ours LBG-RoBERTa']
    assert list(thesis_table('table2_6').columns) == ['method', 'lam', 'thesis_error', 'thesis_deo']
    assert thesis_table('table2_7').set_index('K').loc[4, 'thesis_deo'] == 0.0533


# ---- `table_frame` / `pick_table`: the one accessor behind `thesis_table` and every module's seed tables ----
import pandas as pd
from trustnas_nb.reference import table_frame, pick_table, S004_NB201_COLUMNS, S004_NB201_ROWS, s004_nb201_row

HAND = dict(columns=('method', 'lam', 'acc', 'acc_std', 'note'),
            rows=[('A', 0.1, 90.0, 0.5, 'x'), ('A', 0.5, 91.5, None, None), ('B', 1, 89, 0.25, 'y')])


def test_table_frame_on_a_hand_table():
    df = table_frame(HAND, 'ref_')
    assert list(df.columns) == ['method', 'ref_lam', 'ref_acc', 'ref_acc_std', 'ref_note']      # default key: the first column
    assert df.method.tolist() == ['A', 'A', 'B'] and df.ref_lam.tolist() == [0.1, 0.5, 1.0]
    assert str(df.ref_acc.dtype) == 'float64' and df.ref_acc.tolist() == [90.0, 91.5, 89.0]     # an int among floats
    assert df.ref_acc_std.isna().tolist() == [False, True, False] and df.ref_acc_std[2] == 0.25  # None -> NaN in a number column
    assert df.ref_note.isna().tolist() == [False, True, False] and df.ref_note[2] == 'y'          # ... and missing among text
    assert list(table_frame({**HAND, 'key': ('method', 'lam')}, 'ref_').columns) == ['method', 'lam', 'ref_acc', 'ref_acc_std', 'ref_note']
    assert list(table_frame(HAND, 'ref_', key=('method', 'note')).columns) == ['method', 'ref_lam', 'ref_acc', 'ref_acc_std', 'note']
    assert list(table_frame(HAND, '').columns) == list(HAND['columns'])
    assert len(table_frame(dict(columns=('a', 'b'), rows=[]), 'p_')) == 0 and list(table_frame(dict(columns=('a', 'b'), rows=[]), 'p_').columns) == ['a', 'p_b']
    pd.testing.assert_frame_equal(df, pd.DataFrame([('A', 0.1, 90.0, 0.5, 'x'), ('A', 0.5, 91.5, None, None), ('B', 1, 89, 0.25, 'y')],
                                                   columns=['method', 'ref_lam', 'ref_acc', 'ref_acc_std', 'ref_note']))


@pytest.mark.parametrize('bad, match', [
    (dict(rows=[('A', 1.0)]), r"reference table 'hand' lacks 'columns'"),
    (dict(columns=('method', 'acc')), r"reference table 'hand' lacks 'rows'"),
    ([('A', 1.0)], r"'hand' must be a dict .* got list"),
    (dict(columns='method', rows=[]), r"'columns' must be a non-empty sequence of column names, got 'method'"),
    (dict(columns=(), rows=[]), r"'columns' must be a non-empty sequence"),
    (dict(columns=('method', 3), rows=[]), r"column names, got \('method', 3\)"),
    (dict(columns=('method', 'acc', 'acc'), rows=[]), r"duplicate column name\(s\) \['acc'\]"),
    (dict(columns=('method', 'acc'), rows=[('A', 1.0), ('B', 2.0, 0.1)]), r"row 1 \('B', 2\.0, 0\.1\) has 3 values, expected 2"),
    (dict(columns=('method', 'acc'), rows=[('A',)]), r"row 0 \('A',\) has 1 values, expected 2"),
    (dict(columns=('method', 'acc'), rows=['A1']), r"row 0 must be a tuple of 2 values, got 'A1'"),
    (dict(columns=('method', 'acc'), rows={'A': 1.0}), r"'rows' must be a sequence of row tuples"),
    (dict(columns=('method', 'acc'), rows=[('A', 1.0)], key=('method', 'seed')), r"key column\(s\) \['seed'\] are not among"),
])
def test_table_frame_rejects_a_malformed_table(bad, match):
    with pytest.raises(ValueError, match=match): table_frame(bad, 'ref_', 'hand')


def test_table_frame_bad_prefix_and_pick_table():
    with pytest.raises(ValueError, match='prefix must be a str, got None'): table_frame(HAND, None)
    assert pick_table(REFERENCE, 'table1_7') is REFERENCE['table1_7']
    with pytest.raises(ValueError, match=r"unknown seed-009 table 'nope'; expected one of a, b$"): pick_table({'a': HAND, 'b': HAND}, 'nope', 'seed-009 table')
    with pytest.raises(ValueError, match=r"unknown reference table 'table9_9'; expected one of table1_1, table1_2, "): thesis_table('table9_9')


@pytest.mark.parametrize('name', sorted(SHAPES))
def test_thesis_table_is_the_old_accessor(name):
    "`thesis_table` through `table_frame` builds exactly the frame the former inline code built."
    t = REFERENCE[name]
    key = t.get('key', (t['columns'][0],))
    old = pd.DataFrame(t['rows'], columns=list(t['columns']))
    old = old.rename(columns={c: f'thesis_{c}' for c in old.columns if c not in key})
    pd.testing.assert_frame_equal(thesis_table(name), old, check_exact=True)


SEED_004 = '004_9ee9ddc6deeeea1b.txt'

def test_shared_seed004_nb201_rows_against_the_seed():
    "Each shared NAS-Bench-201 row is printed, cell for cell, on every seed-004 line the modules take it for."
    text = _seed(SEED_004)
    lines = {'ENAS': (991, 1363, 1892, 2127), 'DARTS': (992, 993, 1365, 1366, 2131), 'SETN': (994, 1367, 2129),
             'RandomNAS': (995, 2128), 'optimal': (1893, 2133)}
    assert set(lines) == set(S004_NB201_ROWS)
    for method, nos in lines.items():
        for n in nos:
            cells = [c for c in text[n - 1].split('\t') if c.strip()][1:]
            got = [v for c in cells for v in _parse_cell(c)[:2]]
            assert tuple(got) == S004_NB201_ROWS[method], (method, n)
    assert len(S004_NB201_COLUMNS) == 13 and all(len(r) == 12 for r in S004_NB201_ROWS.values())
    assert s004_nb201_row('ENAS', 'DARTS (2nd)') == ('DARTS (2nd)',) + S004_NB201_ROWS['ENAS'] and s004_nb201_row('SETN')[0] == 'SETN'
    with pytest.raises(ValueError, match="unknown shared seed-004 NAS-Bench-201 row 'GDAS'"): s004_nb201_row('GDAS')
