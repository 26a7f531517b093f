"Genotypes: published data, text round trips, safe parsing, validation, derivation (DARTS / PC-DARTS / argmax), drawing."
import builtins, json
import numpy as np
import pytest
import torch

from trustnas_nb.genotypes import (Genotype, GenotypeError, GENOTYPES, get_genotype, parse_genotype, format_genotype,
                                   validate_genotype, cell_nodes, derive_genotype, plot_cell, genotype_to_json,
                                   genotype_from_json, to_nb201_string)
from trustnas_nb.ops import get_space, uniform_space, PRIMITIVES

PUBLISHED = ['DARTS_V1', 'DARTS_V2', 'PC_DARTS_cifar', 'PC_DARTS_image', 'PDARTS']


# --- the data type and the published genotypes -------------------------------------------------------------------

def test_genotype_is_darts_namedtuple():
    g = GENOTYPES['DARTS_V2']
    assert isinstance(g, tuple) and g._fields == ('normal', 'normal_concat', 'reduce', 'reduce_concat')
    assert repr(g).startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ")
    # range and list concat compare equal after normalisation
    a = Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], normal_concat=range(2, 3), reduce=[], reduce_concat=[])
    assert a.normal_concat == [2] and a == Genotype([('skip_connect', 0), ('skip_connect', 1)], [2], [], [])


def test_published_genotypes_present_and_valid():
    for name in PUBLISHED: assert name in GENOTYPES
    for name, g in GENOTYPES.items():
        validate_genotype(g)
        n_in, nodes = cell_nodes(g, 'normal')
        assert n_in == 2 and all(len(n) == 2 for n in nodes), name
    # spot checks against the published files
    assert GENOTYPES['DARTS_V2'].normal[7] == ('dil_conv_3x3', 2)
    assert GENOTYPES['PC_DARTS_image'].normal[7] == ('dil_conv_5x5', 4)
    assert GENOTYPES['PDARTS'].reduce[0] == ('avg_pool_3x3', 0)
    assert GENOTYPES['PC_DARTS_cifar'].reduce[:2] == [('sep_conv_5x5', 1), ('max_pool_3x3', 0)]
    for name in PUBLISHED:
        validate_genotype(GENOTYPES[name], 'darts')   # all DARTS-space cells (4 nodes, DARTS ops)


def test_get_genotype_unknown_lists_names():
    assert get_genotype('DARTS') is GENOTYPES['DARTS_V2'] and get_genotype('pc_darts_image') is GENOTYPES['PC_DARTS_image']
    with pytest.raises(ValueError) as e: get_genotype('ENAS')
    for name in PUBLISHED: assert name in str(e.value)
    assert 'ENAS' in str(e.value)


# --- text ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('name', list(GENOTYPES))
def test_round_trip(name):
    g = GENOTYPES[name]
    for text in (format_genotype(g), format_genotype(g, multiline=True), str(g), repr(g)):
        assert parse_genotype(text) == g
    assert format_genotype(parse_genotype(format_genotype(g))) == format_genotype(g)
    assert genotype_from_json(genotype_to_json(g)) == g
    assert json.loads(genotype_to_json(g))['normal'][0] == list(g.normal[0])


def test_parse_variants():
    g = GENOTYPES['PC_DARTS_cifar']
    text = repr(g).replace('normal_concat=[2, 3, 4, 5]', 'normal_concat=range(2, 6)').replace('reduce_concat=[2, 3, 4, 5]', 'reduce_concat=range(2, 6)')
    assert 'range(2, 6)' in text and parse_genotype(text) == g
    assert parse_genotype('PC_DARTS_cifar = ' + text) == g            # a line copied from genotypes.py
    assert parse_genotype('genotypes.Genotype' + text[len('Genotype'):]) == g
    assert parse_genotype('  DARTS_V2 ') == GENOTYPES['DARTS_V2']      # a bare published name
    pos = "Genotype([('sep_conv_3x3', 0), ('skip_connect', 1)], [2], [('max_pool_3x3', 0), ('max_pool_3x3', 1)], [2])"
    assert parse_genotype(pos).reduce == [('max_pool_3x3', 0), ('max_pool_3x3', 1)]


@pytest.mark.parametrize('text, needle', [
    ("Genotype(normal=[('sep_conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], reduce=[], reduce_concat=[])", "'sep_conv_9x9'"),
    ("Genotype(normal=[('sep_conv_3x3', 2), ('skip_connect', 1)], normal_concat=[2], reduce=[], reduce_concat=[])", 'bad input index 2'),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('skip_connect', 0), ('skip_connect', 5)], normal_concat=[2, 3], reduce=[], reduce_concat=[])", 'bad input index 5'),
    ("Genotype(normal=[('sep_conv_3x3', -1), ('skip_connect', 1)], normal_concat=[2], reduce=[], reduce_concat=[])", 'bad input index -1'),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('skip_connect', 2)], normal_concat=[2], reduce=[], reduce_concat=[])", 'exactly 2 inputs per intermediate node'),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[7], reduce=[], reduce_concat=[])", 'bad node index 7'),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', '1')], normal_concat=[2], reduce=[], reduce_concat=[])", 'input index must be an int'),
    ("Genotype(normal=[('sep_conv_3x3', 0)", 'malformed genotype text'),
    ("Genotype(normal=[], normal_concat=[2], colour='red')", "unknown Genotype field 'colour'"),
    ("Genotipe(normal=[], normal_concat=[])", 'expected a call Genotype('),
    ("[('sep_conv_3x3', 0)]", 'expected a call Genotype('),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)])", "missing field(s) normal_concat"),
    ("NoSuchGenotype", 'unknown genotype'),
    ("", 'empty genotype text'),
])
def test_parse_errors_name_the_problem(text, needle):
    with pytest.raises(GenotypeError) as e: parse_genotype(text)
    assert needle in str(e.value), str(e.value)


@pytest.mark.parametrize('payload', [
    "__import__('os').system('touch {f}')",
    "open('{f}', 'w').write('x')",
    "[open('{f}', 'w') for _ in range(1)]",
    "(lambda: open('{f}', 'w'))()",
    "[('skip_connect', 0), ('skip_connect', (f:=open('{f}', 'w')) and 1)]",
    "Genotype.__class__.__subclasses__()",
    "[('sep_conv_3x3', 0), ('skip_connect', 1)] + [open('{f}', 'w')]",
    "f'{{open(\"{f}\", \"w\")}}'",
])
def test_parse_never_executes_code(payload, tmp_path, monkeypatch):
    marker = tmp_path / 'pwned'
    def boom(*a, **k): raise AssertionError('eval/exec must never be called')
    monkeypatch.setattr(builtins, 'eval', boom); monkeypatch.setattr(builtins, 'exec', boom)
    p = payload.format(f=marker)
    for text in (f"Genotype(normal={p}, normal_concat=[2], reduce=[], reduce_concat=[])",
                 f"Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat={p}, reduce=[], reduce_concat=[])",
                 p):
        with pytest.raises(GenotypeError): parse_genotype(text)
    assert not marker.exists()


def test_parse_rejects_huge_range():
    with pytest.raises(GenotypeError, match='only string/integer literals'):
        parse_genotype("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], normal_concat=range(10**2, 10**9))")
    with pytest.raises(GenotypeError, match='implausibly long'):
        parse_genotype("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], normal_concat=range(0, 1000000000))")


def test_validate_index_bounds_per_node():
    # node i (0-based) may read inputs 0..i+1: node 3 may read 5? no (5 is itself); 4 yes
    ok = Genotype([('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 2), ('skip_connect', 0),
                   ('skip_connect', 3), ('skip_connect', 1), ('skip_connect', 4), ('skip_connect', 0)], [2, 3, 4, 5], [], [])
    validate_genotype(ok)
    bad = Genotype(ok.normal[:6] + [('skip_connect', 5), ('skip_connect', 0)], [2, 3, 4, 5], [], [])
    with pytest.raises(GenotypeError, match=r'node 3 may take inputs 0\.\.4'): validate_genotype(bad)


def test_validate_against_space():
    with pytest.raises(GenotypeError, match="not a candidate on edge 2->5 of space 's2'"):
        validate_genotype(GENOTYPES['DARTS_V2'], 's2')
    with pytest.raises(GenotypeError, match='5 intermediate nodes'):
        validate_genotype(GENOTYPES['NASNet'], 'darts')
    wide = uniform_space('wide', tuple(PRIMITIVES) + ('sep_conv_7x7', 'conv_7x1_1x7'), n_nodes=5)
    validate_genotype(GENOTYPES['NASNet'], wide)
    validate_genotype(GENOTYPES['AmoebaNet'], wide)


def test_nb201_strings():
    s = '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|'
    g = parse_genotype(s, space='nb201')
    assert g.normal_concat == [3] and g.reduce == [] and len(g.normal) == 6
    assert to_nb201_string(g) == s and parse_genotype(format_genotype(g)) == g
    n_in, nodes = cell_nodes(g)
    assert n_in == 1 and [len(n) for n in nodes] == [1, 2, 3]
    with pytest.raises(GenotypeError, match='must list 2 incoming'): parse_genotype('|nor_conv_3x3~0|+|nor_conv_3x3~0|')
    with pytest.raises(GenotypeError, match="unknown operation 'conv_9x9'"): parse_genotype('|conv_9x9~0|')
    with pytest.raises(GenotypeError, match='expected 1'): parse_genotype('|none~0|+|none~0|none~0|')
    with pytest.raises(GenotypeError): to_nb201_string(GENOTYPES['DARTS_V2'])


# --- derivation ----------------------------------------------------------------------------------------------------

def _reference_darts_parse(W, ops, n_nodes, betas=None):
    "An independent, literal transcription of the DARTS rule (numpy, loops) used to check derive_genotype."
    gene, start, n = [], 0, 2
    for i in range(n_nodes):
        end = start + n
        Wi = W[start:end].copy()
        if betas is not None: Wi = Wi * betas[start:end, None]
        def strength(x): return max(Wi[x][k] for k in range(len(Wi[x])) if ops[k] != 'none')
        edges = sorted(range(i + 2), key=lambda x: -strength(x))[:2]
        for j in edges:
            k_best = None
            for k in range(len(Wi[j])):
                if ops[k] != 'none' and (k_best is None or Wi[j][k] > Wi[j][k_best]): k_best = k
            gene.append((ops[k_best], j))
        start = end; n += 1
    return gene


def _softmax_np(a): e = np.exp(a - a.max(-1, keepdims=True)); return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize('seed', range(8))
def test_derive_matches_reference_rule(seed):
    sp = get_space('darts'); ops = list(sp.ops()[0])
    g = torch.Generator().manual_seed(seed)
    an, ar = torch.randn(14, 8, generator=g), torch.randn(14, 8, generator=g)
    an[:, 0] += 2.0                                       # 'none' tends to dominate, as in real searches
    got = derive_genotype(an, ar, 'darts')
    assert got.normal == _reference_darts_parse(_softmax_np(an.numpy()), ops, 4)
    assert got.reduce == _reference_darts_parse(_softmax_np(ar.numpy()), ops, 4)
    assert got.normal_concat == got.reduce_concat == [2, 3, 4, 5]
    # PC-DARTS edge normalisation: betas softmaxed over each node's incoming edges
    bn = torch.randn(14, generator=g) * 2
    bsm, s = np.zeros(14), 0
    for i in range(4):
        bsm[s:s + i + 2] = _softmax_np(bn.numpy()[s:s + i + 2]); s += i + 2
    got_b = derive_genotype(an, ar, 'darts', betas_normal=bn, betas_reduce=bn)
    assert got_b.normal == _reference_darts_parse(_softmax_np(an.numpy()), ops, 4, bsm)
    # probabilities instead of logits give the same genotype when flagged
    assert derive_genotype(torch.softmax(an, -1), torch.softmax(ar, -1), 'darts', from_logits=False) == got


def _handmade():
    sp = get_space('darts'); P = list(sp.ops()[0])
    a = torch.zeros(14, 8); a[:, P.index('none')] = 5.0
    a[1, P.index('sep_conv_3x3')] = 3.0; a[0, P.index('max_pool_3x3')] = 1.0
    a[4, P.index('dil_conv_5x5')] = 3.0; a[2, P.index('skip_connect')] = 2.0; a[3, P.index('avg_pool_3x3')] = 1.0
    return a, P


def test_derive_handmade_top2_and_no_none():
    a, P = _handmade()
    g = derive_genotype(a, a, 'darts')
    assert g.normal[:4] == [('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('dil_conv_5x5', 2), ('skip_connect', 0)]
    assert all(op != 'none' for op, _ in g.normal + g.reduce)
    # untouched nodes: all non-none ops tie -> the first candidate after 'none', on the two earliest edges
    assert g.normal[4:6] == [('max_pool_3x3', 0), ('max_pool_3x3', 1)]
    validate_genotype(g, 'darts')


def test_betas_change_the_choice_only_when_they_should():
    a, P = _handmade()
    b = torch.zeros(14); b[3] = 4.0                          # promote edge 3 (input 1 -> node 1)
    g = derive_genotype(a, a, 'darts', betas_normal=b, betas_reduce=None)
    assert g.normal[2:4] == [('avg_pool_3x3', 1), ('dil_conv_5x5', 2)]
    assert g.reduce[2:4] == [('dil_conv_5x5', 2), ('skip_connect', 0)]   # reduce cell had no betas
    assert g.normal[:2] == derive_genotype(a, a, 'darts').normal[:2]      # node 0 untouched by edge-3's beta
    uniform = derive_genotype(a, a, 'darts', betas_normal=torch.zeros(14), betas_reduce=torch.zeros(14))
    assert uniform == derive_genotype(a, a, 'darts')                      # equal betas change nothing
    big = torch.zeros(14); big[2] = 10.0                                  # an edge already chosen stays; op unchanged
    assert derive_genotype(a, a, 'darts', betas_normal=big).normal[2:4] == [('skip_connect', 0), ('dil_conv_5x5', 2)]


def test_derive_s1_per_edge_ops_and_s4_noise():
    s1 = get_space('s1')
    g = derive_genotype(torch.tensor([[0., 1.]] * 14), torch.tensor([[1., 0.]] * 14), 's1')
    for cell, col, red in ((g.normal, 1, False), (g.reduce, 0, True)):
        _, nodes = cell_nodes(g, 'reduce' if red else 'normal')
        for i, node in enumerate(nodes):
            for op, j in node:
                e = s1.edges.index((j, i + 2))
                assert op == s1.ops(red)[e][col]
    validate_genotype(g, 's1')
    assert g.normal[:2] == [('dil_conv_3x3', 0), ('dil_conv_5x5', 1)]
    # S4: 'noise' is a real candidate (only 'none' is excluded)
    g4 = derive_genotype(torch.tensor([[3., 0.]] * 14), torch.tensor([[3., 0.]] * 14), 's4')
    assert all(op == 'noise' for op, _ in g4.normal)
    # S3 has 'none' first: it is never chosen even when it dominates
    g3 = derive_genotype(torch.tensor([[9., 0., 1.]] * 14), torch.tensor([[9., 1., 0.]] * 14), 's3')
    assert {op for op, _ in g3.normal} == {'sep_conv_3x3'} and {op for op, _ in g3.reduce} == {'skip_connect'}


def test_derive_argmax_keeps_every_edge_including_none():
    a = torch.zeros(6, 5); a[:, 0] = 1.0; a[5, 3] = 2.0
    g = derive_genotype(a, space='nb201')
    assert to_nb201_string(g) == '|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|'
    assert g.reduce == [] and g.normal_concat == [3]
    g2 = derive_genotype(a, a, space='nb201')
    assert g2.reduce == g2.normal and g2.reduce_concat == [3]


def test_derive_shape_errors_and_row_lists():
    with pytest.raises(ValueError, match=r'shape \(n_edges=14, n_ops\)'): derive_genotype(torch.zeros(10, 8), torch.zeros(14, 8))
    with pytest.raises(ValueError, match='expected 8 values'): derive_genotype(torch.zeros(14, 7), torch.zeros(14, 7))
    with pytest.raises(ValueError, match='one value per edge'): derive_genotype(torch.zeros(14, 8), None, betas_normal=torch.zeros(3))
    rows = [torch.randn(8, generator=torch.Generator().manual_seed(i)) for i in range(14)]
    assert derive_genotype(rows, rows) == derive_genotype(torch.stack(rows), torch.stack(rows))


# --- drawing -------------------------------------------------------------------------------------------------------

def test_plot_cell_draws_every_edge():
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch
    for name, which in (('DARTS_V2', 'normal'), ('DARTS_V2', 'reduce'), ('AmoebaNet', 'reduce')):
        g = GENOTYPES[name]
        ax = plot_cell(name, which)
        cell, concat = (g.normal, g.normal_concat) if which == 'normal' else (g.reduce, g.reduce_concat)
        arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
        assert len(arrows) == len(cell) + len(concat)
        texts = [t.get_text() for t in ax.texts]
        for op, _ in cell: assert op in texts
        assert '$c_{k-2}$' in texts and '$c_{k-1}$' in texts and '$c_{k}$' in texts
        assert {str(i) for i in range(len(cell) // 2)} <= set(texts)
        plt.close(ax.figure)
    ax = plot_cell(parse_genotype('|nor_conv_3x3~0|+|none~0|skip_connect~1|'), 'normal'); plt.close(ax.figure)
    with pytest.raises(GenotypeError, match='no reduction cell'): plot_cell('|nor_conv_3x3~0|', 'reduce')


def test_genotype_pickles_and_copies():
    import copy, pickle
    g = GENOTYPES['PDARTS']
    assert pickle.loads(pickle.dumps(g)) == g and type(pickle.loads(pickle.dumps(g))) is Genotype
    assert copy.deepcopy(g) == g
