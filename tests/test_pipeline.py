"The reproduce pipeline: papermill execution at ci scale, skipping complete runs, failures, interrupted runs."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import nbformat, pandas as pd, pytest
from trustnas_nb.reproduce import discover, reproduce, write_report, is_complete, notebook_hash

ROOT = Path(__file__).resolve().parents[1]
TRUSTNAS = [str(Path(sys.executable).parent/'trustnas')]
pytestmark = pytest.mark.pipeline

def _nb(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cells[0], metadata={'tags': ['parameters']})] + [nbformat.v4.new_code_cell(c) for c in cells[1:]]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}
    nbformat.write(nb, str(path)); return path

PARAMS = "scale = 'ci'\nseed = 0\noutdir = None\ndevice = 'auto'\nthreads = 0"
WRITE_TABLE = ("import pandas as pd, os, time\nfrom trustnas_nb.core import Outputs\n"
               "out = Outputs(outdir, NAME, params=dict(scale=scale), seeds=[seed])\n"
               "out.table(pd.DataFrame({'k': list(range(50)), 'v': [i * i for i in range(50)]}), 'first')\n")

def _cli(*args, **kw):
    env = {**os.environ, 'TRUSTNAS_SETTINGS': str(ROOT/'settings.ini')}
    return subprocess.run([*TRUSTNAS, *args], capture_output=True, text=True, env=env, **kw)

def test_demo_notebook_runs_then_skips_then_forces(tmp_path):
    r = _cli('reproduce', '--scale', 'ci', '--only', 'demo_digits_cnn', '--outputs', str(tmp_path), '--no-progress')
    assert r.returncode == 0, r.stdout + r.stderr
    d = tmp_path/'ci'/'demo_digits_cnn'
    summ = pd.read_csv(d/'tables'/'summary.csv')
    assert 0 <= summ.test_acc_mean[0] <= 100
    assert (d/'figures'/'training_curves.png').stat().st_size > 1000
    assert (d/'executed.ipynb').is_file() and json.loads((d/'run.json').read_text())['status'] == 'ok'
    report = (tmp_path/'REPORT.md').read_text()
    assert 'demo_digits_cnn' in report and 'test_acc_mean' in report and '*complete*' in report
    batch = json.loads((tmp_path/'ci'/'reproduce.json').read_text())      # the batch's elapsed time, in the report too
    assert batch['notebooks'] == {'demo_digits_cnn': 'ran'} and batch['elapsed_seconds'] >= json.loads((d/'run.json').read_text())['seconds'] - 1
    assert 'elapsed** ' in report and '1 of 1 notebooks ran' in report
    mtime = (d/'tables'/'summary.csv').stat().st_mtime_ns
    r2 = _cli('reproduce', '--scale', 'ci', '--only', 'demo_digits_cnn', '--outputs', str(tmp_path), '--no-progress')
    assert r2.returncode == 0 and 'skipped' in r2.stdout, r2.stdout
    assert (d/'tables'/'summary.csv').stat().st_mtime_ns == mtime        # untouched
    assert json.loads((tmp_path/'ci'/'reproduce.json').read_text()) == batch   # a batch that ran nothing keeps the last record
    r3 = _cli('reproduce', '--scale', 'ci', '--only', 'demo_digits_cnn', '--outputs', str(tmp_path), '--no-progress', '--force')
    assert r3.returncode == 0 and ' ran ' in r3.stdout, r3.stdout
    assert (d/'tables'/'summary.csv').stat().st_mtime_ns != mtime

def test_same_seed_same_numbers(tmp_path):
    for sub in ('a', 'b'):
        res = reproduce(scale='ci', only='demo_digits_cnn', outputs_dir=tmp_path/sub, progress=False)
        assert [r.status for r in res] == ['ran'], res
    a, b = (pd.read_csv(tmp_path/s/'ci/demo_digits_cnn/tables/per_seed.csv') for s in 'ab')
    assert a.drop(columns='seconds').equals(b.drop(columns='seconds'))

def test_failure_is_reported_and_others_still_run(tmp_path):
    nbs = tmp_path/'exps'; nbs.mkdir()
    _nb(nbs/'a_good.ipynb', PARAMS, "NAME='a_good'\n" + WRITE_TABLE + "out.finish()")
    _nb(nbs/'b_bad.ipynb', PARAMS, "NAME='b_bad'\n" + WRITE_TABLE + "raise RuntimeError('deliberate failure 42')")
    res = {r.notebook: r for r in reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False)}
    assert res['a_good'].status == 'ran'
    assert res['b_bad'].status == 'failed' and 'deliberate failure 42' in res['b_bad'].reason
    assert (tmp_path/'out/ci/b_bad/tables/first.csv').is_file()           # the table written before the failure stays
    assert 'INCOMPLETE (failed' in (tmp_path/'out/REPORT.md').read_text()
    # the failed one is not complete, so it runs again; the good one is skipped
    res2 = {r.notebook: r.status for r in reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False)}
    assert res2 == {'a_good': 'skipped', 'b_bad': 'failed'}

def test_progress_is_streamed_and_each_notebook_keeps_its_log(tmp_path, capsys):
    nbs = tmp_path/'exps'; nbs.mkdir()
    _nb(nbs/'p_slow.ipynb', PARAMS, "NAME='p_slow'\n" + WRITE_TABLE +
        "from trustnas_nb.core import progress\nprint('hello from the notebook')\n"
        "for ep in range(1, 4):\n    progress('search toy', ep, 3, seed=seed); time.sleep(1.2)\n"
        "out.finish()")
    res = reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=True, progress_every=0.3)
    assert [x.status for x in res] == ['ran'], res
    d = tmp_path/'out/ci/p_slow'
    assert 'hello from the notebook' in (d/'log.txt').read_text()           # the notebook's own output, kept beside it
    evs = [json.loads(l) for l in (d/'progress.jsonl').read_text().splitlines()]
    assert [e['done'] for e in evs if e['what'] == 'search toy'] == [1, 2, 3]
    assert any(e['what'] == 'table first written' for e in evs)
    out = capsys.readouterr()
    lines = [l for l in (out.out + out.err).splitlines() if l.strip().startswith('p_slow:')]
    assert any('search toy 2/3 seed=0' in l for l in lines), out                 # streamed while it ran
    assert len(lines) <= 12, lines                    # one line per change (or per silent minute), not one per poll

def test_cli_exit_status_and_bad_input(tmp_path):
    r = _cli('reproduce', '--scale', 'huge', '--outputs', str(tmp_path))
    assert r.returncode == 2 and "unknown scale 'huge'" in r.stderr
    r = _cli('reproduce', '--scale', 'ci', '--only', 'no_such_notebook', '--outputs', str(tmp_path))
    assert r.returncode == 2 and 'matches no experiment notebook' in r.stderr

def test_killed_run_keeps_written_tables_and_reruns(tmp_path):
    nbs = tmp_path/'exps'; nbs.mkdir()
    _nb(nbs/'slow.ipynb', PARAMS, "NAME='slow'\n" + WRITE_TABLE +
        "if os.environ.get('SLOW_TEST_SLEEP'): time.sleep(float(os.environ['SLOW_TEST_SLEEP']))\n"
        "out.table(pd.DataFrame({'k': [1]}), 'second')\nout.finish()")
    code = (f"import sys; from trustnas_nb.reproduce import reproduce; "
            f"reproduce(scale='ci', outputs_dir={str(tmp_path/'out')!r}, nbs_dir={str(nbs)!r}, progress=False)")
    env = {**os.environ, 'SLOW_TEST_SLEEP': '120'}
    p = subprocess.Popen([sys.executable, '-c', code], env=env, start_new_session=True)
    first = tmp_path/'out/ci/slow/tables/first.csv'
    t0 = time.time()
    while not first.exists() and time.time() - t0 < 120: time.sleep(0.2)
    assert first.exists(), 'the first table never appeared'
    time.sleep(0.5)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    df = pd.read_csv(first)
    assert len(df) == 50 and df.v.iloc[-1] == 49 * 49                       # the whole table, not half of it
    assert not (tmp_path/'out/ci/slow/tables/second.csv').exists()
    assert not (tmp_path/'out/ci/slow/manifest.json').exists()
    params = dict(scale='ci', seed=0, outdir=str(tmp_path/'out/ci/slow'), device='auto', threads=1)
    # the next run executes it again (it is not complete) and finishes it
    res = reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False)
    assert [r.status for r in res] == ['ran']
    assert (tmp_path/'out/ci/slow/manifest.json').exists()

THESIS_NBS = 'demo*,table*'      # the thesis' own chapters; the neighbouring seeds' notebooks (s00N_*) run in the next test

@pytest.mark.slow
def test_every_experiment_notebook_runs_at_ci_scale(tmp_path):
    "A notebook that no longer runs fails CI: every experiment executes at ci scale and completes."
    nbs = discover(only=THESIS_NBS)
    assert {p.stem for p in discover()} == {p.stem for p in nbs} | {p.stem for p in discover(only='s00*')}, 'a notebook no test runs'
    res = reproduce(scale="ci", only=THESIS_NBS, outputs_dir=tmp_path, progress=False, jobs=1)   # one thread under xdist (TRUSTNAS_THREADS, conftest)
    failed = [f'{r.notebook}: {r.reason}' for r in res if r.status != 'ran']
    assert not failed, failed
    for nb in nbs:
        d = tmp_path/'ci'/nb.stem
        assert (d/'manifest.json').is_file(), nb.stem
        assert list((d/'tables').glob('*.csv')), f'{nb.stem} wrote no table'
    # chapter 1: every table and figure, and the claims, which round-trip into REPORT.md's Claims section
    from trustnas_nb.claims import read_claims
    ch1 = {'table1_1_robust_cifar': ['tables/table1_1.csv', 'tables/table1_5_6.csv', 'figures/fig1_1.png'],
           'table1_2_darts_family': ['tables/table1_2.csv'], 'table1_3_transfer': ['tables/table1_3.csv'],
           'table1_4_robust_mnist': ['tables/table1_4.csv', 'tables/table1_5_6.csv'], 'table1_7_stability': ['tables/table1_7.csv']}
    # chapter 4 (images): Tables 4.1-4.5, 4.7 and Figures 4.2, 4.3, 4.4, 4.7
    ch4 = {'table4_1_sanas_images': ['tables/table4_1.csv', 'tables/table4_3.csv', 'tables/fig4_2_randomisation.csv', 'figures/fig4_2.png',
                                     'figures/fig4_3.png', 'figures/fig4_7.png'],
           'table4_2_sanas_transfer': ['tables/table4_2.csv'],
           'table4_4_sanas_ablations': ['tables/table4_4.csv', 'tables/table4_5.csv', 'tables/table4_7.csv', 'figures/fig4_4.png'],
           # chapter 4 (text): Tables 4.6, 4.8 / 4.13
           'table4_6_sanas_text': ['tables/table4_6.csv', 'tables/table4_6_thesis.csv', 'tables/table4_8_precision.csv',
                                   'tables/table4_8_words.csv', 'table4_8_words.html', 'figures/table4_6_accuracy.png'],
           # chapter 4 (brain tumours, §4.6): Tables 4.9-4.12, Figures 4.5-4.7
           'table4_10_brain_tumours': ['tables/table4_9.csv', 'tables/table4_10.csv', 'tables/table4_11.csv', 'tables/table4_12.csv',
                                       'tables/table4_9_per_class_accuracy.csv', 'figures/fig4_5.png', 'figures/fig4_6.png', 'figures/fig4_7.png']}
    # chapter 2: Tables 2.1, 2.2, 2.6-2.8, the searched experts' cells
    ch2 = {'table2_1_fairness': ['tables/table2_1.csv', 'tables/table2_2.csv', 'tables/table2_6.csv', 'tables/table2_7.csv',
                                 'tables/table2_8.csv', 'tables/groups_vs_attribute.csv', 'figures/table2_1.png',
                                 'figures/tables2_6_2_8.png', 'figures/cells_lbg_darts_biased_digits.png'],
           'table2_3_lbg_moe': ['tables/table2_3.csv', 'figures/table2_3.png'],
           'table2_4_lbg_nas': ['tables/table2_4.csv', 'tables/table2_5.csv', 'tables/table2_10.csv', 'figures/table2_4.png',
                                'figures/cells_lbg_darts.png'],
           'table2_11_lbg_text': ['tables/table2_11.csv', 'figures/table2_11.png']}
    # chapter 3: Tables 3.2-3.6, Figure 3.3, the searched cells (convolutional and recurrent)
    ch3 = {'table3_2_iuc': ['tables/table3_2.csv', 'tables/table3_3.csv', 'tables/table3_6.csv', 'figures/table3_2.png',
                            'figures/figure3_3.png', 'figures/cells_iuc_e.png', 'figures/cells_iuc_d.png', 'tables/search_captions_iuc_e.csv'],
           'table3_4_iuc_ablations': ['tables/table3_4.csv', 'tables/table3_5.csv', 'figures/table3_4.png', 'figures/table3_5.png']}
    report = (tmp_path/'REPORT.md').read_text()
    assert 'Claims at `ci` scale' in report
    for stem, files in {**ch1, **ch4, **ch2, **ch3}.items():
        for f in files + ['claims.json']: assert (tmp_path/'ci'/stem/f).is_file(), f'{stem}/{f}'
        claims = read_claims(tmp_path/'ci'/stem)
        assert claims and all(c.scale == 'ci' and c.verdict in ('holds', 'does not hold', 'undecided') for c in claims), stem
        for c in claims: assert c.id in report, c.id

def test_every_experiment_has_a_parameters_cell_and_untagged_ones_fail(tmp_path):
    from trustnas_nb.reproduce import has_parameters_cell
    for nb in discover(): assert has_parameters_cell(nb), f'{nb.name} lost its parameters tag'
    nbs = tmp_path/'exps'; nbs.mkdir()
    path = _nb(nbs/'untagged.ipynb', PARAMS, "print('hi')")
    nb = nbformat.read(str(path), as_version=4); nb.cells[0].metadata = {}; nbformat.write(nb, str(path))
    res = reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False)
    assert res[0].status == 'failed' and "no cell tagged 'parameters'" in res[0].reason

def test_completeness_ignores_threads_but_not_code_changes(tmp_path):
    nbs = tmp_path/'exps'; nbs.mkdir()
    _nb(nbs/'tiny.ipynb', PARAMS, "NAME='tiny'\n" + WRITE_TABLE + "out.finish()")
    assert [r.status for r in reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False)] == ['ran']
    d = tmp_path/'out/ci/tiny'
    run = json.loads((d/'run.json').read_text())
    assert is_complete(d, nbs/'tiny.ipynb', {**run['parameters'], 'threads': 7}) == (True, 'complete')
    assert is_complete(d, nbs/'tiny.ipynb', {**run['parameters'], 'seed': 1})[1] == 'parameters changed'
    (d/'run.json').write_text(json.dumps({**run, 'package_hash': 'old'}))
    assert is_complete(d, nbs/'tiny.ipynb', run['parameters'])[1] == 'package code changed'

def test_parallel_jobs_start_the_longest_last_measured_first(tmp_path, monkeypatch):
    "With --jobs > 1 the notebooks that took longest last time start first, so the jobs end together."
    import threading, trustnas_nb.reproduce as R
    nbs = tmp_path/'exps'; nbs.mkdir()
    for name, secs in (('a_short', 1.0), ('b_long', 50.0), ('c_longest', 90.0), ('d_new', None)):
        _nb(nbs/f'{name}.ipynb', PARAMS, 'pass')
        if secs is not None:
            d = tmp_path/'out'/'ci'/name; d.mkdir(parents=True)
            (d/'run.json').write_text(json.dumps(dict(status='failed', seconds=secs)))
    started, lock = [], threading.Lock()
    def fake(nb, out, params, progress=True, timeout=None):
        with lock: started.append(nb.stem)
        time.sleep(0.3)
        return R.RunResult(nb.stem, 'ran', 0.3, '', str(out))
    monkeypatch.setattr(R, 'run_notebook', fake)
    res = reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False, jobs=2)
    assert [r.notebook for r in res] == ['a_short', 'b_long', 'c_longest', 'd_new']      # results in discovery order
    assert set(started[:2]) == {'c_longest', 'b_long'} and started[2:] == ['a_short', 'd_new']
    assert R._last_seconds(tmp_path/'nowhere') == 0.0

def test_parallel_jobs_start_the_longest_chain_and_fall_back_to_the_committed_run(tmp_path, monkeypatch):
    "A notebook others wait for counts their time too; without a run.json of its own, the committed outputs' one is used."
    import trustnas_nb.reproduce as R
    repo = tmp_path/'repo'; monkeypatch.setattr(R, 'repo_root', lambda: repo)
    for name, secs in (('b_mid', 60.0), ('c_after_a', 50.0), ('a_first', 20.0)):
        d = repo/'outputs'/'ci'/name; d.mkdir(parents=True); (d/'run.json').write_text(json.dumps(dict(seconds=secs)))
    monkeypatch.setattr(R, 'NEEDS', {'c_after_a': ('a_first',)})
    todo = [dict(nb=Path(f'{n}.ipynb'), out=tmp_path/'out'/'ci'/n, group='g') for n in ('a_first', 'b_mid', 'c_after_a', 'd_new')]
    assert R._last_seconds(todo[1]['out']) == 60.0                       # from the committed run
    order = [it['nb'].stem for it in sorted(todo, key=lambda it: R._schedule_key(it, todo))]
    assert order == ['a_first', 'b_mid', 'c_after_a', 'd_new']            # chain 20 + 50 = 70 > 60
    for it in todo: it['out'] = tmp_path/'elsewhere'/'cpu'/it['nb'].stem   # nothing measured at this scale
    order = [it['nb'].stem for it in sorted(todo, key=lambda it: R._schedule_key(it, todo))]
    assert order[0] == 'a_first'                                          # the one others wait for starts first

def test_parallel_jobs_start_the_notebook_others_wait_for_first(tmp_path, monkeypatch):
    "Nothing measured yet: through reproduce itself, the notebook others need starts first although it sorts last by name."
    import threading, trustnas_nb.reproduce as R
    monkeypatch.setattr(R, 'repo_root', lambda: tmp_path/'repo')
    nbs = tmp_path/'exps'; nbs.mkdir()
    for name in ('a_waits', 'b_other', 'c_other', 'z_needed'): _nb(nbs/f'{name}.ipynb', PARAMS, 'pass')
    monkeypatch.setattr(R, 'NEEDS', {'a_waits': ('z_needed',)})
    started, lock = [], threading.Lock()
    def fake(nb, out, params, progress=True, timeout=None):
        with lock: started.append(nb.stem)
        time.sleep(0.2)
        return R.RunResult(nb.stem, 'ran', 0.2, '', str(out))
    monkeypatch.setattr(R, 'run_notebook', fake)
    reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False, jobs=2)
    assert started[0] == 'z_needed' and started.index('a_waits') > started.index('z_needed'), started

def test_parallel_jobs_wait_for_the_notebook_whose_cache_they_reuse(tmp_path, monkeypatch):
    "NEEDS: a notebook that reuses another's memoized runs starts only after that one has finished."
    import threading, trustnas_nb.reproduce as R
    nbs = tmp_path/'exps'; nbs.mkdir()
    for name in ('a_first', 'b_needs_a', 'c_other', 'd_other'): _nb(nbs/f'{name}.ipynb', PARAMS, 'pass')
    real = dict(R.NEEDS)
    monkeypatch.setattr(R, 'NEEDS', {'b_needs_a': ('a_first',)})
    events, lock = [], threading.Lock()
    def fake(nb, out, params, progress=True, timeout=None):
        with lock: events.append(('start', nb.stem))
        time.sleep(0.4 if nb.stem == 'a_first' else 0.1)
        with lock: events.append(('end', nb.stem))
        return R.RunResult(nb.stem, 'ran', 0.1, '', str(out))
    monkeypatch.setattr(R, 'run_notebook', fake)
    res = reproduce(scale='ci', outputs_dir=tmp_path/'out', nbs_dir=nbs, progress=False, jobs=2)
    assert [r.status for r in res] == ['ran'] * 4
    assert events.index(('start', 'b_needs_a')) > events.index(('end', 'a_first'))
    assert events.index(('start', 'c_other')) < events.index(('end', 'a_first'))     # the free job did not wait
    exps = {p.stem for p in (ROOT/'nbs'/'experiments').glob('*.ipynb')}
    assert set(real) <= exps and all(set(v) <= exps for v in real.values())                 # no stale names

def _check_claims(d: Path, report: str):
    from trustnas_nb.claims import read_claims
    claims = read_claims(d)
    assert claims and all(c.scale == 'ci' and c.verdict in ('holds', 'does not hold', 'undecided') for c in claims), d.name
    for c in claims: assert c.id in report, c.id

# the neighbouring documents: seed 002 (NB-201 robustness dataset, NAS on robust accuracy, AG-Net; issue 19), seed 003 (Herron:
# CDARTS/ICDARTS, XDARTS) and seed 004 (Zhang: EN2AS, NSAS, E2NAS, BaLeNAS, iDARTS; issue 18)
SEED_FILES = {
    's002_robustness_dataset': ['figures/accuracy_distributions.png', 'figures/best_cells.png', 'figures/neighbourhood.png', 'figures/proxy_tau.png', 'figures/tau_matrix.png', 'figures/top_under_budget.png', 'figures/wrong_confidence.png', 'tables/accuracy_summary.csv', 'tables/best_archs.csv', 'tables/neighbourhood.csv', 'tables/proxies.csv', 'tables/proxy_tau.csv', 'tables/robustness_dataset.csv', 'tables/s002_optimum.csv', 'tables/tau_clean_robust.csv', 'tables/timing.csv', 'tables/top_under_budget.csv', 'tables/wrong_confidence.csv'],
    's002_table1_robust_nas': ['figures/s002_best_vs_queries.png', 'figures/s002_table1.png', 'tables/runs.csv', 'tables/s002_agnet_nb201_reference.csv', 'tables/s002_queries_to_best.csv', 'tables/s002_table1_measured.csv', 'tables/s002_table1_reference.csv', 'tables/s002_table1_space.csv'],
    's003_table3_2_icdarts': ['figures/fig3_2_eval_curves.png', 'figures/s003_table3_2.png', 'tables/runs.csv', 'tables/s003_table3_2.csv', 'tables/s003_table3_3_reference.csv', 'tables/s003_table3_6_routes.csv', 'tables/s003_table3_7.csv'],
    's003_table4_3_xdarts': ['figures/fig4_4_tournament_ops.png', 'figures/s003_table4_7.png', 'tables/runs.csv', 'tables/s003_table4_3.csv', 'tables/s003_table4_4_reference.csv', 'tables/s003_table4_5.csv', 'tables/s003_table4_6.csv', 'tables/s003_table4_7.csv'],
    's004_table2_1_en2as': ['figures/s004_table2_1.png', 'tables/runs.csv', 'tables/s004_table2_1.csv', 'tables/s004_table2_1_reference.csv', 'tables/s004_table2_3_reference.csv'],
    's004_table3_1_nsas': ['figures/s004_fig3_4_forgetting.png', 'figures/s004_table3_1.png', 'tables/runs.csv', 'tables/s004_table3_1.csv', 'tables/s004_table3_1_reference.csv', 'tables/s004_table3_3_reference.csv'],
    's004_table4_1_e2nas': ['figures/fig4_3_gamma_exploration.png', 'figures/s004_table4_1.png', 'tables/runs.csv', 'tables/s004_table4_1.csv', 'tables/s004_table4_1_reference.csv', 'tables/s004_table4_2.csv', 'tables/s004_table4_6_darts.csv', 'tables/vgae_reconstruction.csv'],
    's004_table5_1_balenas': ['figures/fig5_4_5_6_search_curves.png', 'figures/s004_table5_1.png', 'tables/runs.csv', 'tables/s004_table5_1.csv', 'tables/s004_table5_1_reference.csv', 'tables/s004_table5_2.csv'],
    's004_table6_1_idarts': ['figures/hypergrad_quadratic.png', 'figures/hypergrad_supernet.png', 'figures/s004_table6_1.png', 'tables/hypergrad_quadratic.csv', 'tables/hypergrad_supernet.csv', 'tables/neumann_vs_K.csv', 'tables/runs.csv', 'tables/s004_table6_1.csv', 'tables/s004_table6_1_reference.csv', 'tables/s004_table6_2_reference.csv', 'tables/stochastic_bias.csv', 'tables/supernet_info.csv'],
}

def test_seed_experiment_notebooks_run_at_ci_scale(tmp_path):
    "The neighbouring methods' notebooks run at ci scale (on the other xdist worker than the thesis' ones) and write their tables."
    res = reproduce(scale='ci', only='s00*', outputs_dir=tmp_path, progress=False, jobs=1)
    failed = [f'{r.notebook}: {r.reason}' for r in res if r.status != 'ran']
    assert not failed, failed
    report = (tmp_path/'REPORT.md').read_text()
    assert {r.notebook for r in res} == set(SEED_FILES)
    for stem, files in SEED_FILES.items():
        for f in files + ['claims.json', 'manifest.json']: assert (tmp_path/'ci'/stem/f).is_file(), f'{stem}/{f}'
        _check_claims(tmp_path/'ci'/stem, report)
