import os
os.environ.setdefault('MPLBACKEND', 'Agg')
import pytest
import torch
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

@pytest.fixture(scope='module')
def one_thread():
    """Tiny tensors: one thread is fastest and immune to a busy machine's oversubscription; restored afterwards.
    A module opts in with `pytestmark = pytest.mark.usefixtures('one_thread')`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
