"Foundation: settings, seeding, presets, stamped atomic outputs."
import json, os
from pathlib import Path
import pandas as pd, pytest, torch
from trustnas_nb import core
from trustnas_nb.core import (SCALES, PRESETS, Outputs, SettingsError, atomic_write, derive_seed, get_device,
                              load_settings, preset, seed_everything, write_table)

@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith('TRUSTNAS_'): monkeypatch.delenv(k)

def _ini(tmp_path, body):
    f = tmp_path/'settings.ini'; f.write_text(body); return f

def test_settings_file_env_and_override_precedence(tmp_path, monkeypatch):
    f = _ini(tmp_path, '[trustnas]\ndata_root = mydata\nscale = ci\nthreads = 3\n')
    s = load_settings(f)
    assert s.scale == 'ci' and s.threads == 3 and s.data_root == (tmp_path/'mydata').resolve()
    monkeypatch.setenv('TRUSTNAS_SCALE', 'paper')
    assert load_settings(f).scale == 'paper'
    assert load_settings(f, scale='cpu').scale == 'cpu'          # flag beats environment
    assert load_settings(f, scale=None).scale == 'paper'         # None means "not given"

def test_settings_found_by_env_var(tmp_path, monkeypatch):
    f = _ini(tmp_path, '[trustnas]\nseed = 7\n')
    monkeypatch.setenv('TRUSTNAS_SETTINGS', str(f))
    assert load_settings().seed == 7

@pytest.mark.parametrize('body,needle', [
    ('[trustnas]\nscale = huge\n', "unknown scale 'huge'"),
    ('[trustnas]\nthreads = many\n', "threads = 'many'"),
    ('[trustnas]\nseed = -1\n', 'seed = -1'),
    ('[trustnas]\ndevice = tpu\n', "unknown device 'tpu'"),
    ('[trustnas]\ncolour = blue\n', "unknown key(s) ['colour']"),
    ('[other]\nscale = ci\n', 'no [trustnas] section'),
    ('this is not an ini file\n', 'not a valid settings file'),
])
def test_malformed_settings_give_clear_errors(tmp_path, body, needle):
    with pytest.raises(SettingsError, match=None) as e: load_settings(_ini(tmp_path, body))
    assert needle in str(e.value), str(e.value)

def test_missing_settings_file_and_unknown_override(tmp_path):
    with pytest.raises(SettingsError, match='does not exist'): load_settings(tmp_path/'nope.ini')
    with pytest.raises(SettingsError, match="unknown setting 'colour'"): load_settings(colour='blue')

def test_repository_settings_file_is_valid():
    s = load_settings(Path(__file__).parents[1]/'settings.ini')
    assert s.scale in SCALES

def test_seeding_is_deterministic():
    seed_everything(11); a = (torch.randn(5), torch.nn.Linear(4, 3).weight.detach().clone())
    seed_everything(11); b = (torch.randn(5), torch.nn.Linear(4, 3).weight.detach().clone())
    seed_everything(12); c = torch.randn(5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c)
    with pytest.raises(ValueError, match='non-negative int'): seed_everything(-3)
    assert derive_seed(0, 'a') == derive_seed(0, 'a') and derive_seed(0, 'a') != derive_seed(0, 'b')

def test_presets_one_place_and_errors():
    assert set(PRESETS) == set(SCALES)
    for s in SCALES:
        assert set(PRESETS[s]) == set(PRESETS['ci'])
        for g in PRESETS[s]: assert set(PRESETS[s][g]) == set(PRESETS['ci'][g]), (s, g)
    # the paper preset carries the thesis' DARTS search/eval configuration (SANAS supp. Tables 9 and 14)
    ps, pe = preset('paper', 'search'), preset('paper', 'eval')
    assert (ps.C, ps.layers, ps.epochs, ps.batch_size, ps.w_lr) == (16, 8, 50, 64, 0.025)
    assert (pe.C, pe.layers, pe.epochs) == (36, 20, 600)
    # ci is the smallest
    assert preset('ci', 'search').epochs <= preset('cpu', 'search').epochs <= ps.epochs
    with pytest.raises(SettingsError, match="unknown scale 'big'"): preset('big', 'search')
    with pytest.raises(KeyError, match='unknown preset group'): preset('ci', 'nope')
    p = preset('ci', 'search')
    with pytest.raises(TypeError): p['C'] = 3
    assert p.replace(C=99).C == 99 and p.C != 99

def test_device_choice():
    assert get_device('cpu').type == 'cpu'
    assert get_device('auto').type == ('cuda' if torch.cuda.is_available() else 'cpu')
    with pytest.raises(SettingsError, match="unknown device 'gpu0'"): get_device('gpu0')
    if not torch.cuda.is_available():
        with pytest.raises(SettingsError, match='CUDA is not available'): get_device('cuda')

def test_tables_and_figures_are_stamped(tmp_path):
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    from PIL import Image
    out = Outputs(tmp_path, 'exp', params=dict(scale='ci', lr=0.1), seeds=[0, 1], device='cpu')
    df = pd.DataFrame({'m': ['x', 'y'], 'acc': [90.5, 91.25]})
    csv = out.table(df, 't1', title='T')
    assert pd.read_csv(csv).equals(df)
    meta = json.loads((tmp_path/'tables/t1.meta.json').read_text())
    for k in ('params', 'seeds', 'version', 'git_commit', 'device', 'wall_time_s'): assert k in meta
    assert meta['params']['lr'] == 0.1 and meta['seeds'] == [0, 1]
    md = (tmp_path/'tables/t1.md').read_text()
    assert '| m | acc |' in md and 'seeds: [0, 1]' in md and 'wall time' in md
    fig, ax = plt.subplots(); ax.plot([1, 2]); png = out.figure(fig, 'f1'); plt.close(fig)
    info = Image.open(png).info
    assert json.loads(info['Description'])['seeds'] == [0, 1]
    assert not (tmp_path/'manifest.json').exists()
    out.finish()
    man = json.loads((tmp_path/'manifest.json').read_text())
    assert man['complete'] and 'tables/t1.csv' in man['files'] and 'figures/f1.png' in man['files']

def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    p = atomic_write(tmp_path/'a.csv', 'old\n')
    class Boom:
        def encode(self, *_): raise RuntimeError('boom')
    with pytest.raises(Exception): atomic_write(p, Boom())
    assert p.read_text() == 'old\n'
    assert [f.name for f in tmp_path.iterdir()] == ['a.csv']   # no temporary left behind
