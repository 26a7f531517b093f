import subprocess, sys
from pathlib import Path
ROOT = Path(__file__).resolve().parents[1]

def test_readme_is_rendered_from_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/'nbs'/'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_import_is_fast_and_lazy():
    code = "import time, sys; t=time.perf_counter(); import trustnas_nb; dt=time.perf_counter()-t; print(dt, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) < 3.0 and out[1] == 'False', out

def test_every_public_name_resolves():
    import trustnas_nb
    missing = [n for n in trustnas_nb._LAZY if not hasattr(trustnas_nb, n)]
    assert not missing, missing
    assert trustnas_nb.get_genotype('DARTS_V2') == trustnas_nb.parse_genotype(trustnas_nb.format_genotype(trustnas_nb.get_genotype('DARTS_V2')))
