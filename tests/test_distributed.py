"DDP under torchrun on CPUs (gloo): two processes give the parameters of one process with the doubled batch."
import os, subprocess, sys
from pathlib import Path
import pytest, torch
from torch import nn
from trustnas_nb.distributed import (DistInfo, SyncBatchNorm, allreduce_grads, convert_sync_batchnorm, init_distributed,
                                     shard_loader)

TORCHRUN = str(Path(sys.executable).parent/'torchrun')

def test_sync_batchnorm_is_batchnorm_in_one_process():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2, affine=False))
    import copy
    ref = copy.deepcopy(net); sync = convert_sync_batchnorm(copy.deepcopy(net))
    assert sum(isinstance(m, SyncBatchNorm) for m in sync.modules()) == 2
    x = torch.randn(6, 3, 7, 7)
    for _ in range(3):
        a, b = ref(x), sync(x)
        assert torch.allclose(a, b, atol=1e-6)
        a.square().mean().backward(); b.square().mean().backward()
    for (n, p), (_, q) in zip(ref.named_parameters(), sync.named_parameters()): assert torch.allclose(p.grad, q.grad, atol=1e-6), n
    for (n, p), (_, q) in zip(ref.named_buffers(), sync.named_buffers()): assert torch.equal(p, q), n
    ref.eval(); sync.eval(); assert torch.allclose(ref(x), sync(x), atol=1e-6)

def test_shards_of_a_step_are_the_one_process_batch_and_bad_sizes_fail():
    ds = torch.utils.data.TensorDataset(torch.arange(40.).view(40, 1), torch.zeros(40, dtype=torch.long))
    one = shard_loader(ds, 8, seed=3, info=DistInfo())
    two = [shard_loader(ds, 8, seed=3, info=DistInfo(rank=r, world=2)) for r in (0, 1)]
    for _epoch in range(2):                                  # a new permutation each epoch, the same on every rank
        f = [b[0].view(-1).tolist() for b in one]
        p = [[b[0].view(-1).tolist() for b in ld] for ld in two]
        assert all(len(a) == len(b) == 4 and sorted(a + b) == sorted(c) for a, b, c in zip(*p, f))
    assert f != [b[0].view(-1).tolist() for b in shard_loader(ds, 8, seed=3, info=DistInfo())]   # epoch 2 ≠ epoch 1
    with pytest.raises(ValueError, match='multiple of the 3 process'): shard_loader(ds, 8, info=DistInfo(world=3))
    p = nn.Parameter(torch.ones(3)); p.grad = torch.full((3,), 2.0); allreduce_grads([p])   # one process: unchanged
    assert torch.equal(p.grad, torch.full((3,), 2.0))

def test_init_distributed_without_torchrun_and_with_bad_environment(monkeypatch):
    for k in ('WORLD_SIZE', 'RANK', 'LOCAL_RANK'): monkeypatch.delenv(k, raising=False)
    assert init_distributed() == DistInfo(device='cuda' if torch.cuda.is_available() else 'cpu') and not init_distributed().active
    monkeypatch.setenv('WORLD_SIZE', 'two')
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer"): init_distributed()
    monkeypatch.setenv('WORLD_SIZE', '2'); monkeypatch.setenv('RANK', '5')
    with pytest.raises(ValueError, match=r"RANK must be in \[0, 2\)"): init_distributed()
    with pytest.raises(ValueError, match="backend must be"): init_distributed('mpi')

def _torchrun(n, out):
    cmd = [TORCHRUN, '--standalone', '--nnodes', '1', '--nproc_per_node', str(n), '-m', 'trustnas_nb.distributed', 'train',
           '--scale', 'ci', '--batch-size', '16', '--epochs', '1', '--max-steps', '3', '--no-augment', '--drop-path', '0',
           '--backend', 'gloo', '--out', str(out), '--save-params']
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return torch.load(out/'params.pt', weights_only=True)

@pytest.mark.pipeline
def test_two_processes_equal_one_process_with_the_doubled_batch(tmp_path):
    one, two = _torchrun(1, tmp_path/'one'), _torchrun(2, tmp_path/'two')
    assert one.keys() == two.keys()
    for k in one:
        if 'num_batches_tracked' in k: assert torch.equal(one[k], two[k]), k; continue
        assert torch.allclose(one[k], two[k], atol=1e-5, rtol=1e-4), (k, (one[k] - two[k]).abs().max())
    # and the run did train: the parameters left their initialisation (same seed, a one-process build)
    from trustnas_nb.evalnet import build_network
    from trustnas_nb.core import preset, seed_everything, derive_seed
    E = preset('ci', 'eval'); seed_everything(derive_seed(0, 'eval'))
    init = build_network('DARTS_V2', style='cifar', C=E['C'], layers=E['layers'], num_classes=10, in_channels=1).state_dict()
    moved = sum(not torch.allclose(init[k].float(), one[k].float()) for k in one if k in init and init[k].shape == one[k].shape)
    assert moved > len(one) // 2

# ---- searches under torchrun: two gloo processes = the one-process search with the doubled batch ----
SEARCH = dict(scale='ci', batch_size=32, epochs=1, max_steps=3)     # 3 α steps and 3 w steps; 16 rows per rank
TOL = 2e-6      # largest |difference| allowed in any α, weight or BatchNorm statistic after the 3 steps

def _torchrun_search(n, out, method, max_steps=SEARCH['max_steps']):
    cmd = [TORCHRUN, '--standalone', '--nnodes', '1', '--nproc_per_node', str(n), '-m', 'trustnas_nb.distributed', 'search',
           '--method', method, '--scale', SEARCH['scale'], '--batch-size', str(SEARCH['batch_size']), '--epochs',
           str(SEARCH['epochs']), '--max-steps', str(max_steps), '--backend', 'gloo', '--out', str(out), '--save-params']
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r

def _one_process(method, **over):
    from trustnas_nb.search import run_search
    return run_search(method, progress=False, keep_supernet=True, **{**SEARCH, **over})

def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)

@pytest.fixture(scope='module')
def two_process_darts_1st(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp_search')/'darts_1st'
    return _torchrun_search(2, out, 'darts_1st'), out

@pytest.mark.slow
def test_two_process_first_order_search_is_the_one_process_search_with_the_doubled_batch(two_process_darts_1st):
    _, out = two_process_darts_1st
    two = torch.load(out/'supernet.pt', weights_only=True)
    ref = _one_process('darts_1st')
    one = {k: v.detach() for k, v in ref.supernet.state_dict().items()}
    assert sum(k.startswith('alpha') for k in one) >= 2            # the architecture parameters are compared too
    for k in one:
        if 'num_batches_tracked' in k: assert torch.equal(one[k], two[k]), k
    d = _max_diff(one, two)
    print(f'largest |difference| {d:.1e}')
    assert d < TOL, d
    # not vacuous: the one-process search with half the batch (what one rank alone would do) lands far away, in α too
    half = {k: v.detach() for k, v in _one_process('darts_1st', batch_size=16).supernet.state_dict().items()}
    assert _max_diff(half, two) > 100 * TOL
    assert max((half[k] - two[k]).abs().max().item() for k in two if k.startswith('alpha')) > 100 * TOL
    # the logs agree as well: the ranks' losses and accuracies are summed over the group
    import pandas as pd
    log = pd.read_csv(out/'search_log.csv')
    assert len(log) == 1 and log['genotype'][0] == ref.history[0]['genotype']
    for c in ('train_loss', 'val_loss', 'val_acc'): assert abs(log[c][0] - ref.history[0][c]) < 1e-5, c

@pytest.mark.slow
def test_only_rank_zero_writes_the_search_outputs(two_process_darts_1st):
    r, out = two_process_darts_1st
    lines = [l for l in r.stdout.splitlines() if l.startswith('genotype: ')]
    assert len(lines) == 1, r.stdout[-2000:]                        # rank 1 printed nothing
    assert sorted(p.name for p in out.iterdir()) == ['progress.jsonl', 'search.json', 'search_log.csv', 'supernet.pt']
    import json
    summary = json.loads((out/'search.json').read_text())
    assert summary['world'] == 2 and lines[0] == f"genotype: {summary['genotype']}"
    events = [json.loads(l) for l in (out/'progress.jsonl').read_text().splitlines()]
    assert [(e['done'], e['total']) for e in events] == [(1, 1)]    # one epoch, one event, from one process

@pytest.mark.slow
def test_two_process_second_order_step_is_the_one_process_step_with_the_doubled_batch(tmp_path):
    # One step (α by the finite-difference hypergradient, then w): virtual step and adjoint averaged, so w' is common.
    # Later steps are ill-conditioned for any comparison of second-order runs: the one-process search itself, run through
    # its two equivalent code paths (fused fast path, module path), drifts apart by ~1e-4 after 2-3 steps (max-pool ties
    # and ReLU kinks under the finite difference's 1/ε); the engine's averaging is checked exactly below (threads).
    _torchrun_search(2, tmp_path, 'darts_2nd', max_steps=1)
    two = torch.load(tmp_path/'supernet.pt', weights_only=True)
    one = {k: v.detach() for k, v in _one_process('darts_2nd', max_steps=1).supernet.state_dict().items()}
    d = _max_diff(one, two)
    print(f'largest |difference| {d:.1e}')
    assert d < TOL, d
    half = {k: v.detach() for k, v in _one_process('darts_2nd', max_steps=1, batch_size=16).supernet.state_dict().items()}
    assert _max_diff(half, two) > 100 * TOL

def test_refusals_and_one_process_data_parallel_path():
    from trustnas_nb.search import run_search
    from trustnas_nb.distributed import ShardedBatches
    with pytest.raises(ValueError, match="cannot run data parallel"): run_search('sanas_darts2nd', scale='ci', distributed=True)
    with pytest.raises(ValueError, match="distributed must be None"): run_search('darts_1st', scale='ci', distributed='yes')
    ds = torch.utils.data.TensorDataset(torch.arange(10.), torch.arange(10))
    with pytest.raises(ValueError, match="multiple of the 4 process"):
        ShardedBatches(torch.utils.data.DataLoader(ds, batch_size=6), DistInfo(rank=1, world=4))
    with pytest.raises(ValueError, match="drop_last=True"):      # 10 rows: the last batch of 4 has 2
        list(ShardedBatches(torch.utils.data.DataLoader(ds, batch_size=4), DistInfo(rank=0, world=2)))
    parts = [list(ShardedBatches(torch.utils.data.DataLoader(ds, batch_size=4, drop_last=True), DistInfo(rank=r, world=2)))
             for r in (0, 1)]
    assert [p[0].tolist() for p in parts[0]] == [[0., 1.], [4., 5.]] and [p[1].tolist() for p in parts[1]] == [[2, 3], [6, 7]]
    # in one process, distributed=True (module path, synchronised BatchNorm alone, the engine's reduce) is the plain search
    a, b = _one_process('darts_1st', distributed=True), _one_process('darts_1st')
    assert _max_diff(a.supernet.state_dict(), b.supernet.state_dict()) < TOL and a.genotype == b.genotype

def test_amp_is_off_on_cpus_so_the_default_evaluation_is_unchanged():
    from trustnas_nb.search import evaluate_genotype
    kw = dict(scale='ci', progress=False, max_steps=2, epochs=1)
    a, b = evaluate_genotype('DARTS_V2', amp=True, **kw), evaluate_genotype('DARTS_V2', **kw)
    assert a['test_acc'] == b['test_acc'] and a['history'].drop(columns=['seconds'], errors='ignore').equals(
        b['history'].drop(columns=['seconds'], errors='ignore'))

# ---- the engine's `reduce` placements, without processes: two threads are two replicas ----
import threading

class _Group:
    "Two threads exchanging tensors at a barrier: an in-process stand-in for an all-reduce over two replicas."
    def __init__(self, n): self.n, self.bar, self.slots = n, threading.Barrier(n, timeout=60), [None] * n
    def gather(self, r, t):
        self.slots[r] = t; self.bar.wait(); out = list(self.slots); self.bar.wait(); return out

class _Mean(torch.autograd.Function):
    "The mean over the group's replicas; its backward is again that mean (so `exact`'s double backward passes it)."
    @staticmethod
    def forward(ctx, x, group, r):
        ctx.group, ctx.r = group, r
        return torch.stack(group.gather(r, x.detach())).mean(0)
    @staticmethod
    def backward(ctx, g): return _Mean.apply(g, ctx.group, ctx.r), None, None

def _thread_reduce(group, r):
    def reduce(ts):
        ts = list(ts); flat = torch.cat([t.reshape(-1) for t in ts])
        flat = _Mean.apply(flat, group, r) if flat.requires_grad and torch.is_grad_enabled() else \
            torch.stack(group.gather(r, flat.detach())).mean(0)
        return [s.view_as(t) for s, t in zip(torch.split(flat, [t.numel() for t in ts]), ts)]
    return reduce

def _toy_chain(method, reduce, batches):
    "A two-level chain whose losses are batch means (float64): w below, a above, coupled in both losses."
    from trustnas_nb.mlo import Level, MLOProblem
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, generator=g, dtype=torch.float64).requires_grad_()
    a = torch.randn(4, generator=g, dtype=torch.float64).requires_grad_()
    lt = lambda P, b: ((b[0] @ (P['w']['w'] * torch.sigmoid(P['a']['a'])) - b[1]) ** 2).mean() + 0.1 * (P['w']['w'] ** 2 * P['a']['a'].exp()).sum()
    lv = lambda P, b: torch.nn.functional.softplus(b[0] @ torch.tanh(P['w']['w']) - b[1] * P['a']['a'].sum()).mean()
    prob = MLOProblem([Level('w', {'w': w}, lt, torch.optim.SGD([w], lr=0.1, momentum=0.9), weight_decay_unroll=1e-3),
                       Level('a', {'a': a}, lv, torch.optim.SGD([a], lr=0.05))], method=method, reduce=reduce)
    for bt, bv in batches: prob.step({'w': bt, 'a': bv})
    return torch.cat([w.detach(), a.detach()])

@pytest.mark.parametrize('method', ['first_order', 'finite_difference', 'exact', 'neumann'])
def test_engine_reduce_makes_two_replicas_the_one_process_chain_with_the_doubled_batch(method):
    g = torch.Generator().manual_seed(1)
    mk = lambda: (torch.randn(8, 4, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64))
    batches = [(mk(), mk()) for _ in range(4)]
    half = lambda r: [tuple((x[4 * r:4 * r + 4], y[4 * r:4 * r + 4]) for x, y in step) for step in batches]
    one = _toy_chain(method, None, batches)
    group, out, errs = _Group(2), [None, None], []
    def replica(r):
        try: out[r] = _toy_chain(method, _thread_reduce(group, r), half(r))
        except BaseException as e: errs.append(e); group.bar.abort()
    ts = [threading.Thread(target=replica, args=(r,)) for r in (0, 1)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert not errs, errs
    assert torch.equal(out[0], out[1])                              # the replicas stay identical
    assert (out[0] - one).abs().max() < 1e-12, (out[0] - one).abs().max()
    alone = _toy_chain(method, None, half(0))                       # not vacuous: half the batch alone lands elsewhere
    assert (alone - one).abs().max() > 1e-3
