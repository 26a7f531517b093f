"Reference data transcribed from the thesis (seed 000): shapes, spot values checked against the seed text, `thesis_table`."
import pytest
from trustnas_nb.reference import (REFERENCE, thesis_table, TABLE_1_1, TABLE_1_3, TABLE_1_4, TABLE_1_5, TABLE_1_6,
                                   ANOVA_1, RUNTIME_1, DSRNA_CB_SHORT)

SHAPES = {'table1_1': (7, 15), 'table1_2': (20, 6), 'table1_3': (5, 14), 'table1_4': (6, 13), 'table1_5': (2, 6),
          'table1_6': (2, 6), 'table1_7': (4, 9), 'anova1': (3, 3), 'runtime1': (4, 3), 'dsrna_cb_short': (1, 8)}
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
