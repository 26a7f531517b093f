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
