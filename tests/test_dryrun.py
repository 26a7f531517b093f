"Tests of `trustnas_nb.dryrun` and `trustnas reproduce --dry-run` (fast: no paper-scale workload is stepped)."
import math

import pandas as pd
import pytest
import torch
from torch import nn

from trustnas_nb import dryrun
from trustnas_nb.dryrun import (saved_activation_bytes, count_flops, registry, measure, Workload, train_step, rand_images,
                                rand_labels, steps_per_run, schedule_patterns, check_gpu_tflops, dry_run, _params)
from trustnas_nb.reproduce import discover, main
from trustnas_nb.core import SCALES


@pytest.fixture(scope='module')
def paper():
    return registry('paper')


def test_every_experiment_notebook_has_a_workload(paper):
    W, X = paper
    names = [p.stem for p in discover()]
    assert len(names) >= 26
    missing = [n for n in names if not X.get(n)]
    assert not missing, f"experiment notebooks without a dry-run workload (add them to dryrun.registry): {missing}"
    unknown = [u.key for us in X.values() for u in us if u.key not in W]
    assert not unknown
    assert set(X) <= set(names), f"registry names notebooks that do not exist: {sorted(set(X) - set(names))}"
    for u in (u for us in X.values() for u in us):
        assert isinstance(u.runs, int) and u.runs >= 0
        w = W[u.key]
        assert w.batch >= 1 and w.steps >= 1 and w.steps_from


@pytest.mark.parametrize('scale', [s for s in SCALES if s != 'paper'])
def test_registry_at_every_scale(scale):
    W, X = registry(scale)
    assert all(X.get(p.stem) for p in discover())


def test_steps_per_run_by_hand(paper):
    W, _ = paper
    assert steps_per_run(25000, 64, 50) == 50 * 390
    assert steps_per_run(50000, 96, 600, drop_last=False) == 600 * 521
    assert steps_per_run(100, 64, 3, max_steps=1) == 3
    assert W['search/darts_2nd/darts/cifar1032/C16L8n4'].steps == 50 * (25000 // 64)      # DARTS: 50 epochs of 390 steps
    ev = W['eval/cifar/cifar1032/C36L20+aux']
    assert (ev.batch, ev.steps) == (96, 600 * math.ceil(50000 / 96))


def test_darts_evaluation_network_has_the_published_size(paper):
    "The paper-scale evaluation network of table1_1 is DARTS' CIFAR network: search.paper_params, i.e. DARTS_V2's 3.3M."
    from trustnas_nb.search import paper_params
    from trustnas_nb.genotypes import get_genotype
    W, X = paper
    key = next(u.key for u in X['table1_1_robust_cifar'] if u.key.startswith('eval/'))
    n = _params(W[key].build(2, torch.device('meta')))            # shapes only: no memory, no arithmetic
    assert n == paper_params(get_genotype('DARTS_V2'))
    assert round(n / 1e6, 1) == 3.3


def test_activation_bytes_by_hand():
    "Linear(4,8) -> ReLU -> Linear(8,3) on 5 inputs saves x (5x4 floats) and the ReLU's output (5x8 floats, once)."
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(5, 4)
    n, out = saved_activation_bytes(lambda: m(x).sum(), exclude=list(m.parameters()))
    assert n == 4 * (4 * 5 + 8 * 5)
    mm = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).to('meta')
    assert saved_activation_bytes(lambda: mm(torch.empty(5, 4, device='meta')).sum(), exclude=list(mm.parameters()))[0] == n
    # without excluding the parameters, the second weight counts as well (for the gradient reaching the first layer's
    # output); the first weight is not saved, since the input needs no gradient
    assert saved_activation_bytes(lambda: m(x).sum())[0] == n + 4 * (8 * 3)


def test_linear_flops_as_the_counter_defines_them():
    lin, b = nn.Linear(7, 5), 3
    with torch.no_grad():
        assert count_flops(lambda: lin(torch.randn(b, 7)))[0] == 2 * 7 * 5 * b
    # forward + backward with an input that needs no gradient: the weight's gradient is one more product of that size
    assert count_flops(lambda: lin(torch.randn(b, 7)).sum().backward())[0] == 2 * (2 * 7 * 5 * b)


def test_measure_scales_linearly_to_the_paper_batch():
    "A Linear(4,3) trained at paper batch 8, measured at batch 2: FLOPs and bytes of batch 8, by hand."
    build = train_step(lambda: nn.Linear(4, 3), lambda b, d: rand_images(b, (4,), d), lambda b, d: rand_labels(b, 3, d),
                       loss=lambda m, x, y: m(x).pow(2).mean())
    w = Workload('toy', 'toy', build, batch=8, steps=10, steps_from='test')
    r = measure(w, 'cpu', steps=1, measure_batch=2)
    assert r['measure_batch'] == 2 and r['status'] == 'ok'
    assert r['params'] == 4 * 3 + 3
    assert r['step_flops'] == 2 * (2 * 4 * 3 * 8)            # forward and the weight's gradient, at batch 8
    # saved: the input (b x 4 floats) for the weight's gradient and the output (b x 3 floats) for pow's backward
    assert r['act_bytes'] == 8 * (4 * 4 + 4 * 3)
    assert r['step_s'] > 0


def test_schedule_patterns_of_sanas():
    seen = []
    p = schedule_patterns(dict(w1=1, delta=3, w2=3, alpha=5), seen.append)
    assert sorted(round(w * 15) for w, _ in p) == [1, 2, 4, 8]
    for _, prep in p: prep()
    assert sorted(seen) == [0, 1, 3, 5]


@pytest.mark.parametrize('bad', [0, -1, float('nan'), float('inf'), 'abc', None, True])
def test_bad_gpu_tflops_is_a_clear_error(bad):
    with pytest.raises(ValueError, match='gpu_tflops must be a positive number'):
        check_gpu_tflops(bad)
    with pytest.raises(ValueError, match='gpu_tflops'):
        dry_run('ci', only='demo_digits_cnn', gpu_tflops=bad, progress=False)


def test_cli_bad_gpu_tflops(tmp_path, capsys):
    assert main(['reproduce', '--dry-run', '--gpu-tflops', '-2', '--only', 'demo_digits_cnn', '--scale', 'ci',
                 '--outputs', str(tmp_path), '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert 'gpu_tflops must be a positive number' in err and "'-2'" in err
    assert main(['reproduce', '--gpu-tflops', '3', '--only', 'demo_digits_cnn', '--scale', 'ci', '--outputs', str(tmp_path)]) == 2
    assert '--gpu-tflops applies to --dry-run only' in capsys.readouterr().err
    assert not (tmp_path/'ci').exists()


@pytest.mark.parametrize('scale', ['ci', 'paper'])
def test_cli_dry_run_prints_and_writes(tmp_path, capsys, scale):
    "The demo experiment (the cheapest: one small CNN) at ci and at paper scale; no notebook runs."
    rc = main(['reproduce', '--dry-run', '--only', 'demo_digits_cnn', '--scale', scale, '--outputs', str(tmp_path),
               '--device', 'cpu', '--threads', '1', '--gpu-tflops', '4'])
    assert rc == 0
    out = capsys.readouterr().out
    assert '### Per experiment' in out and '| demo_digits_cnn |' in out and '4 TFLOP/s' in out
    csv, md = tmp_path/scale/'dry_run.csv', tmp_path/scale/'dry_run.md'
    assert csv.is_file() and md.is_file() and (tmp_path/scale/'dry_run.meta.json').is_file()
    assert not (tmp_path/scale/'demo_digits_cnn').exists()              # no notebook ran
    df = pd.read_csv(csv)
    assert df['experiment'].tolist() == ['demo_digits_cnn'] and df['status'].tolist() == ['ok']
    r = df.iloc[0]
    if scale == 'paper':      # the demo CNN of width 64 on MNIST: conv 1->64 (640), BN (128), conv 64->128 (73,856), BN (256), linear (1,290)
        assert round(r['params_M'] * 1e6) == 640 + 128 + 73856 + 256 + 1290
        assert (r['batch'], r['steps'], r['runs']) == (128, 20 * math.ceil(60000 / 128), 5)
        assert 'mnist: ' in r['data']
    assert r['est_gpu_h'] > 0 and r['act_GB'] > 0 and r['step_TFLOP'] > 0
    assert math.isclose(r['est_gpu_h'], r['step_TFLOP'] * r['steps'] / 4 / 3600, rel_tol=1e-6)
    assert math.isclose(r['est_gpu_h_total'], r['est_gpu_h'] * r['runs'], rel_tol=1e-9)
    assert '| demo_digits_cnn |' in md.read_text()


def test_lean_flop_count_agrees_with_flop_counter_mode():
    "count_flops uses FlopCounterMode's formulas without its bookkeeping: the same totals on a conv net and a supernet step."
    from torch.utils.flop_counter import FlopCounterMode
    from trustnas_nb.supernet import build_supernet
    net = build_supernet('darts', C=4, num_classes=3, layers=2, n_nodes=2)
    x, y = torch.randn(2, 3, 8, 8), torch.tensor([0, 2])
    cell = nn.LSTMCell(5, 7)
    for fn in (lambda: nn.functional.cross_entropy(net(x), y).backward(), lambda: cell(torch.randn(3, 5))[0].sum().backward()):
        with FlopCounterMode(display=False) as fc: fn()
        assert count_flops(fn)[0] == fc.get_total_flops() > 0
