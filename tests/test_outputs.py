"""The committed `outputs/`: the latest `cpu`-scale run of every experiment notebook, its report, and its stamps.

`outputs/` is produced by `make reproduce` (cpu scale, two jobs) on a clean checkout and committed as it came out; these
tests check that what the report names is there, complete and stamped with a commit in this repository's history."""
import json, subprocess
from pathlib import Path
import pytest
from trustnas_nb.reproduce import check_report, discover, repo_root

ROOT = repo_root()
OUT = ROOT/'outputs'
BATCH = OUT/'cpu'/'reproduce.json'

def _git_history() -> bool:
    try:
        r = subprocess.run(['git', 'rev-parse', '--is-shallow-repository'], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError: return False
    return r.returncode == 0 and r.stdout.strip() == 'false'

pytestmark = pytest.mark.skipif(not (OUT/'REPORT.md').is_file(), reason='no committed outputs/REPORT.md in this checkout')

@pytest.mark.skipif(not _git_history(), reason='needs the full git history (the stamps name commits)')
def test_every_table_the_report_names_exists_and_is_stamped_with_an_ancestor_commit():
    assert check_report(OUT) == []

def test_every_experiment_notebook_has_a_complete_cpu_run():
    for nb in discover():
        d = OUT/'cpu'/nb.stem
        run = json.loads((d/'run.json').read_text())
        assert run['status'] == 'ok' and run['parameters']['scale'] == 'cpu', nb.stem
        files = json.loads((d/'manifest.json').read_text())['files']
        assert any(f.startswith('tables/') and f.endswith('.csv') for f in files), f'{nb.stem}: no table'
        assert all((d/f).is_file() for f in files), nb.stem
        assert (d/'executed.ipynb').is_file() and (d/'log.txt').is_file(), nb.stem

def test_the_whole_cpu_run_was_one_batch_within_the_hour():
    "One `trustnas reproduce` ran every notebook (none reused) on a clean checkout, within the 60-minute budget."
    b = json.loads(BATCH.read_text())
    assert set(b['notebooks']) == {nb.stem for nb in discover()} and set(b['notebooks'].values()) == {'ran'}
    assert not b['skipped'] and '+dirty' not in b['commit']
    assert 0 < b['elapsed_seconds'] <= 3600, b['elapsed_seconds']
    stamps = {json.loads((OUT/'cpu'/nb.stem/'run.json').read_text()).get('git_commit') for nb in discover()}
    assert stamps == {b['commit']}, stamps

def test_report_shows_the_run_and_its_html_rendering():
    text = (OUT/'REPORT.md').read_text(encoding='utf-8')
    assert '## Verdicts at a glance' in text and 'elapsed**' in text and '## Claims' in text
    html = (OUT/'REPORT.html').read_text(encoding='utf-8')
    assert '<img' in html and 'Verdicts at a glance' in html
