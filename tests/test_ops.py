"Operations and search spaces: shapes in normal and reduction cells, spaces as data, clear errors."
import pytest, torch
from trustnas_nb.ops import OPS, PRIMITIVES, SPACES, TEXT_PRIMITIVES, get_space, make_op, cell_edges, SearchSpace, uniform_space

@pytest.mark.parametrize('name', sorted(set(OPS) - set(TEXT_PRIMITIVES[2:])))
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('search', [False, True])
def test_every_op_preserves_shapes(name, stride, search):
    "Image operations (text ones: tests/test_textnas.py) keep the shape on a normal edge and halve it on a reduction edge."
    x = torch.randn(2, 6, 8, 8)
    op = make_op(name, 6, stride, affine=not search, search=search)
    assert op(x).shape == (2, 6, 8 // stride, 8 // stride)

def test_ops_are_standard_layers():
    allowed = (torch.nn.ReLU, torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.Sequential)
    for name in PRIMITIVES:
        for m in make_op(name, 4, 1).modules():
            if not list(m.children()) and type(m).__module__.startswith('torch'): assert isinstance(m, allowed), (name, m)

def test_spaces_are_data():
    assert len(cell_edges(4)) == 14 and cell_edges(3, 1) == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert SPACES['s2'].primitives == ('skip_connect', 'sep_conv_3x3')
    assert 'none' in SPACES['s3'].primitives and 'noise' in SPACES['s4'].primitives
    assert len({ops for ops in SPACES['s1'].ops()}) > 1 and not SPACES['s1'].uniform        # a different pair per edge
    assert all(len(o) == 2 for o in SPACES['s1'].ops(True))
    assert SPACES['nb201'].n_edges == 6 and SPACES['nb201'].discretize == 'argmax'
    assert get_space('darts', n_nodes=5).n_edges == 20

def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match="unknown operation 'conv_9x9'"): make_op('conv_9x9', 4)
    with pytest.raises(ValueError, match='stride must be 1 or 2'): make_op('sep_conv_3x3', 4, 3)
    with pytest.raises(ValueError, match="unknown search space 'S9'"): get_space('S9')
    with pytest.raises(ValueError, match='needs 14 edge op lists'): SearchSpace('bad', (('skip_connect',),) * 3, (('skip_connect',),) * 14)
    with pytest.raises(ValueError, match="unknown operation"): uniform_space('bad', ('skip_connect', 'warp_drive'))
    with pytest.raises(ValueError, match='per-edge operation lists'): get_space('s1', n_nodes=3)
