import os
os.environ.setdefault('MPLBACKEND', 'Agg')
# `make pytest` runs two pytest-xdist workers on the 2-core machines this is budgeted for: one torch thread each
# (and one for the notebooks a worker starts), so the workers do not oversubscribe the cores.
XDIST = bool(os.environ.get('PYTEST_XDIST_WORKER'))
if XDIST:
    for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'TRUSTNAS_THREADS'): os.environ[k] = '1'
import pytest
import torch
torch.set_num_threads(1 if XDIST else max(1, min(2, torch.get_num_threads())))

# The longest tests first, so that under `--dist worksteal` the other worker takes everything else meanwhile.
LONG_FIRST = ('test_every_experiment_notebook_runs_at_ci_scale', 'test_seed_experiment_notebooks_run_at_ci_scale', 'test_demo_notebook_runs_then_skips_then_forces',
              'test_lbg_benchmark_suite_runs_quick', 'test_iuc_benchmark_suite_runs_quick', 'test_same_seed_same_numbers')

def pytest_collection_modifyitems(config, items):
    rank = {n: i for i, n in enumerate(LONG_FIRST)}
    items.sort(key=lambda it: rank.get(it.originalname, len(rank)))   # stable: the rest keep their order

@pytest.fixture(scope='module')
def one_thread():
    """Tiny tensors: one thread is fastest and immune to a busy machine's oversubscription; restored afterwards.
    A module opts in with `pytestmark = pytest.mark.usefixtures('one_thread')`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture
def bench_quick(tmp_path):
    """Runs `benchmarks/bench_iteration.py --suite SUITE --quick` (tiny sizes, one thread) in its own process, asserts it
    succeeded, and returns its markdown results table."""
    import subprocess, sys
    from pathlib import Path
    bench = Path(__file__).resolve().parents[1]/'benchmarks'/'bench_iteration.py'
    def run(suite: str) -> str:
        out = tmp_path/f'{suite}.md'
        r = subprocess.run([sys.executable, str(bench), '--suite', suite, '--quick', '--threads', '1', '--out', str(out)],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        return out.read_text()
    return run
