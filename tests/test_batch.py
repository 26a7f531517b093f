"Batch reruns: the notebooks × scales × seeds grid, and the Ray backend on a local Ray instance (same skip/resume, failure isolation, report)."
import json, sys
import pytest
from test_pipeline import _nb, PARAMS, WRITE_TABLE
from trustnas_nb.reproduce import reproduce, RayPool

pytestmark = pytest.mark.pipeline

def _seeded(name, tail):
    return f"NAME={name!r}\n" + WRITE_TABLE + "out.table(pd.DataFrame({'seed': [seed], 'scale': [scale]}), 'which')\n" + tail

def _two(nbs, bad=False):
    _nb(nbs/'a_good.ipynb', PARAMS, _seeded('a_good', 'out.finish()'))
    _nb(nbs/'b_other.ipynb', PARAMS, _seeded('b_other', "raise RuntimeError('deliberate failure 7')" if bad else 'out.finish()'))

def _which(d):
    import pandas as pd
    return pd.read_csv(d/'tables'/'which.csv').iloc[0].to_dict()

def test_seed_grid_writes_one_root_per_seed_with_its_own_report(tmp_path):
    nbs = tmp_path/'exps'; nbs.mkdir(); _two(nbs)
    res = reproduce(scale='ci', seed=[3, 5], outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False, jobs=2)
    assert sorted((r.notebook, r.status) for r in res) == [('a_good', 'ran')] * 2 + [('b_other', 'ran')] * 2
    for s in (3, 5):
        root = tmp_path/'out'/f'seed-{s}'
        assert (root/'REPORT.md').is_file()
        for nb in ('a_good', 'b_other'): assert _which(root/'ci'/nb) == {'seed': s, 'scale': 'ci'}
    again = reproduce(scale='ci', seed='3,5', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False, jobs=2)
    assert {r.status for r in again} == {'skipped'}
    with pytest.raises(ValueError, match='seed must be'): reproduce(scale='ci', seed='3,x', outputs_dir=tmp_path/'o', nbs_dir=nbs)
    with pytest.raises(ValueError, match="backend must be 'local' or 'ray'"):
        reproduce(scale='ci', outputs_dir=tmp_path/'o', nbs_dir=nbs, backend='slurm')

def test_ray_backend_runs_isolates_failures_and_resumes(tmp_path):
    pytest.importorskip('ray', reason='the ray extra is installed by make test; this skip only applies to a bare install')
    nbs = tmp_path/'exps'; nbs.mkdir(); _two(nbs, bad=True)
    res = reproduce(scale='ci', seed=[0, 1], outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False, jobs=2, backend='ray')
    st = {(r.notebook, r.outdir.split('/seed-')[1][0]): r for r in res}
    assert {k: r.status for k, r in st.items()} == {('a_good', '0'): 'ran', ('a_good', '1'): 'ran',
                                                    ('b_other', '0'): 'failed', ('b_other', '1'): 'failed'}
    assert all('deliberate failure 7' in st[('b_other', s)].reason for s in '01')
    for s in (0, 1):
        root = tmp_path/'out'/f'seed-{s}'
        assert _which(root/'ci/a_good') == {'seed': s, 'scale': 'ci'}
        assert (root/'ci/b_other/tables/first.csv').is_file()             # what the failed one wrote before failing stays
        assert 'INCOMPLETE (failed' in (root/'REPORT.md').read_text()
    again = reproduce(scale='ci', seed=[0, 1], outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False, jobs=2, backend='ray')
    assert sorted((r.notebook, r.status) for r in again) == [('a_good', 'skipped')] * 2 + [('b_other', 'failed')] * 2

def test_ray_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'ray', None)                         # import ray → ImportError
    with pytest.raises(ValueError, match=r"pip install 'trustnas-nb\[ray\]'"): RayPool()
