"Thesis claims as data: the Welch/Holm/ANOVA helpers, verdicts, JSON round trip, record/read, and the report's Claims section."
import json, re
from dataclasses import replace
import numpy as np, pytest
from scipy import stats
from trustnas_nb.claims import (Claim, VERDICTS, welch, holm, compare_greater, compare_less, compare_all, anova,
                                equivalent_or_better, ratio_claim, record_claims, read_claims, claims_markdown)
from trustnas_nb.core import Outputs, atomic_write
from trustnas_nb.reproduce import write_report

WIN, LOSE = [97.5, 97.6, 97.4, 97.55], [97.0, 97.1, 96.9, 97.05]
KW = dict(id='ch1.test', text='ours is more accurate than theirs')

def test_welch_matches_hand_computation():
    a, b = np.array([1.3, 2.1, 1.8, 2.6, 1.9]), np.array([0.9, 1.2, 1.7])
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    w = welch(a, b)
    assert w.t == pytest.approx(t) and w.df == pytest.approx(df)
    assert w.p_greater == pytest.approx(stats.t.sf(t, df)) and w.p_less == pytest.approx(stats.t.cdf(t, df))
    assert welch(a, b, delta=0.5).t == pytest.approx((a.mean() - b.mean() - 0.5) / np.sqrt(va + vb))

def test_verdicts_win_loss_overlap():
    win = compare_greater(WIN, LOSE, **KW)
    assert win.verdict == 'holds' and win.p_value < 0.05 and win.statistic > 0 and win.test == 'Welch t-test (one-sided)'
    assert win.numbers['groups']['ours']['n'] == 4 and win.numbers['difference'] == pytest.approx(np.mean(WIN) - np.mean(LOSE))
    loss = compare_greater(LOSE, WIN, **KW)
    assert loss.verdict == 'does not hold' and loss.p_value > 0.95 and 'reverse' in loss.reason
    over = compare_greater([97.3, 96.8, 97.6], [97.1, 97.4, 96.9], **KW)
    assert over.verdict == 'undecided' and over.reason.startswith('spread too large: p = ') and '≥ 0.05' in over.reason
    assert compare_less(LOSE, WIN, **KW).verdict == 'holds'            # lower is better: errors, costs
    assert compare_greater(WIN, LOSE, alpha=1e-9, **KW).verdict == 'undecided'

def test_one_seed_and_constant_groups_are_undecided():
    c = compare_greater([97.5], LOSE, **KW)
    assert c.verdict == 'undecided' and c.reason == 'one seed (ours): no spread to test' and c.p_value is None
    assert c.numbers['groups']['ours']['std'] is None
    same = compare_greater([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], **KW)
    assert same.verdict == 'undecided' and 'identical constant groups' in same.reason
    assert compare_greater([2.0, 2.0], [1.0, 1.0], **KW).verdict == 'undecided'
    assert compare_greater([2.0, 2.0, 2.0], [1.0, 1.2, 0.9], **KW).verdict == 'holds'   # one constant group is fine

def test_compare_all_holm():
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    ours = {'A': [10.0, 10.2, 10.1], 'B': [9.9, 10.0, 10.1]}
    base = {'X': [9.0, 9.1, 8.9], 'Y': [8.5, 8.7, 8.6]}
    c = compare_all(ours, base, **KW)
    assert c.verdict == 'holds' and len(c.numbers['pairs']) == 4 and c.numbers['correction'] == 'Holm'
    assert c.p_value == max(p['p_holm'] for p in c.numbers['pairs']) and 'Holm' in c.test
    assert all(p['p_holm'] >= p['p'] for p in c.numbers['pairs'])
    rev = compare_all(ours, {**base, 'Z': [11.0, 11.1, 10.9]}, **KW)
    assert rev.verdict == 'does not hold' and 'Z beats' in rev.reason
    und = compare_all(ours, {**base, 'W': [9.5, 10.6, 9.9]}, **KW)
    assert und.verdict == 'undecided'
    assert compare_all([10.0], base, **KW).verdict == 'undecided'                 # one seed: untestable pairs
    assert compare_all(ours, {'X': [10.5, 10.6]}, better='lower', **KW).verdict == 'holds'
    with pytest.raises(ValueError, match=r"names \['A'\] appear both"): compare_all(ours, {'A': [1, 2]}, **KW)

def test_anova_equivalence_ratio():
    g = {'ours': [58.1, 58.4, 57.9], 'b1': [55.4, 55.9, 55.2], 'b2': [56.0, 55.7, 56.3]}
    c = anova(g, ours='ours', **KW)
    r = stats.f_oneway(*g.values())
    assert c.verdict == 'holds' and c.statistic == pytest.approx(r.statistic) and c.p_value == pytest.approx(r.pvalue)
    assert anova(g, ours='b1', **KW).verdict == 'undecided'
    assert anova({'a': [1.0, 1.1, 0.9], 'b': [1.05, 0.95, 1.0]}, **KW).verdict == 'undecided'
    close = equivalent_or_better([97.40, 97.45, 97.38], [97.50, 97.55, 97.46], margin=0.3, **KW)
    assert close.verdict == 'holds' and close.numbers['margin'] == 0.3
    assert equivalent_or_better([96.5, 96.6, 96.4], [97.50, 97.55, 97.46], margin=0.3, **KW).verdict == 'does not hold'
    assert ratio_claim([40.0, 41.0], [4.0, 4.1], thesis=10, **KW).verdict == 'holds'
    far = ratio_claim([12.0], [10.0], thesis=10, **KW)
    assert far.verdict == 'does not hold' and far.statistic == pytest.approx(1.2) and far.p_value is None

def test_json_round_trip():
    c = compare_all({'A': [1.0, 1.2, 1.1]}, {'X': [0.2, 0.3, 0.1]}, source='thesis L522', tables=['table1_1'], scale='cpu', **KW)
    d = json.loads(json.dumps(c.to_dict()))
    assert Claim.from_dict(d) == c and d['verdict'] == 'holds' and d['chapter'] == 'ch1'
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"): Claim.from_dict({**d, 'colour': 'red'})

@pytest.mark.parametrize('kw, msg', [
    (dict(id='', text='x'), "got ''"),
    (dict(id='has space', text='x'), "got 'has space'"),
    (dict(id='ch1.x', text=''), "text"),
    (dict(id='ch1.x', text='x', verdict='maybe'), "unknown verdict 'maybe'"),
    (dict(id='ch1.x', text='x', p_value=float('nan')), 'got nan'),
    (dict(id='ch1.x', text='x', p_value=1.5), 'got 1.5'),
    (dict(id='ch1.x', text='x', statistic=float('inf')), 'got inf'),
    (dict(id='ch1.x', text='x', scale='gpu'), "unknown scale 'gpu'"),
    (dict(id='ch1.x', text='x', verdict='holds'), 'needs a test name'),
])
def test_bad_claims_name_the_value(kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)): Claim(**kw)

def test_bad_measurements_name_the_value():
    with pytest.raises(ValueError, match=r"ours has a non-finite value nan at position 1"): compare_greater([1.0, float('nan')], LOSE, **KW)
    with pytest.raises(ValueError, match='theirs is empty'): compare_greater(WIN, [], **KW)
    with pytest.raises(ValueError, match="alpha must lie in"): compare_greater(WIN, LOSE, alpha=0.7, **KW)
    with pytest.raises(ValueError, match="better must be 'higher' or 'lower', got 'up'"): compare_all(WIN, {'x': LOSE}, better='up', **KW)
    with pytest.raises(ValueError, match=r"margin must be a finite number >= 0, got -1"): equivalent_or_better(WIN, LOSE, -1, **KW)
    with pytest.raises(ValueError, match=r"unknown claim field\(s\) \['colour'\]"): compare_greater(WIN, LOSE, colour='red', **KW)
    with pytest.raises(ValueError, match=r"denominator must be positive"): ratio_claim([1.0], [0.0], thesis=10, **KW)

def test_record_claims_twice_keeps_and_replaces(tmp_path):
    out = Outputs(tmp_path, 'exp', params=dict(scale='ci'), seeds=[0, 1])
    a, b = compare_greater(WIN, LOSE, id='ch1.a', text='a'), compare_greater(LOSE, WIN, id='ch1.b', text='b')
    record_claims(out, [a, b])
    record_claims(out, [replace(a, text='a, reworded'), compare_less(WIN, LOSE, id='ch1.c', text='c')])
    got = read_claims(tmp_path)
    assert [c.id for c in got] == ['ch1.a', 'ch1.b', 'ch1.c'] and got[0].text == 'a, reworded'
    assert all(c.scale == 'ci' for c in got)
    doc = json.loads((tmp_path/'claims.json').read_text())
    assert doc['kind'] == 'claims' and doc['experiment'] == 'exp' and doc['seeds'] == [0, 1]
    assert 'ch1.c' in (tmp_path/'tables/claims.md').read_text()
    files = json.loads(out.finish().read_text())['files']
    assert 'claims.json' in files and 'tables/claims.csv' in files
    with pytest.raises(ValueError, match="decided at scale 'cpu' but this run is at scale 'ci'"):
        record_claims(out, replace(a, scale='cpu'))
    with pytest.raises(ValueError, match=r"given more than once"): record_claims(out, [a, a])
    assert '| ch1.a |' in claims_markdown(got)

def _fake_experiment(root, scale, name, verdicts, complete=True):
    d = root/scale/name
    out = Outputs(d, name, params=dict(scale=scale))
    record_claims(out, [Claim(id=f'ch1.{name}_{i}', text=f'claim {i} of {name}', source=f'thesis L{500 + i}', tables=['t'],
                              verdict=v, test='Welch t-test (one-sided)', p_value=0.01 if v == 'holds' else 0.5,
                              reason='because') for i, v in enumerate(verdicts)])
    if complete:
        out.finish(); atomic_write(d/'run.json', json.dumps(dict(status='ok')))
    return d

def test_report_has_claims_section(tmp_path):
    _fake_experiment(tmp_path, 'cpu', 'table1_1_x', ['holds', 'holds', 'undecided'])
    _fake_experiment(tmp_path, 'cpu', 'table1_2_y', ['does not hold', 'holds', 'undecided'], complete=False)
    (tmp_path/'cpu'/'no_claims').mkdir()                                  # contributes nothing
    bad = _fake_experiment(tmp_path, 'ci', 'broken', ['holds'])
    (bad/'claims.json').write_text('{not json')
    _fake_experiment(tmp_path, 'ci', 'fine', ['holds'])
    rep = write_report(tmp_path).read_text()
    assert '**Claims at `cpu` scale: 3 hold, 1 does not hold, 2 undecided (of 6).**' in rep
    assert '**Claims at `ci` scale: 1 holds, 0 do not hold, 0 undecided (of 1); 1 claims file unreadable.**' in rep
    assert '`broken`: its claims.json could not be read' in rep
    assert rep.index('## Claims') < rep.index('## Scale `cpu`') < rep.index('## Scale `ci`')
    assert rep.index('**Claims at `cpu`') < rep.index('**Claims at `ci`')
    assert 'claim 0 of table1_1_x (thesis L500)' in rep and 'table1_2_y](#cpu-table1_2_y) (incomplete run)' in rep
    assert '</a>table1_1_x' in rep and '</a>no_claims' in rep                 # the rest of the report is unchanged
    claims_part = rep[rep.index('## Claims'):rep.index('## Scale')]
    assert 'no_claims' not in claims_part

def test_report_without_claims(tmp_path):
    assert '## Claims' not in write_report(tmp_path).read_text()             # nothing run: no Claims section
    (tmp_path/'ci'/'exp').mkdir(parents=True)
    assert 'No experiment has recorded thesis claims yet' in write_report(tmp_path).read_text()

def test_report_has_one_section_per_source_document(tmp_path):
    "The thesis' experiments first, then each neighbouring seed's (s002_/s003_/s004_ notebooks), each under its own heading."
    for name in ('s004_table6_1_x', 'table1_1_x', 's003_table3_2_y', 'table4_1_z', 's004_table2_1_w'):
        _fake_experiment(tmp_path, 'cpu', name, ['holds'])
    rep = write_report(tmp_path).read_text()
    body = rep[rep.index('## Scale `cpu`'):]
    heads = [l for l in body.splitlines() if l.startswith(('### The thesis', '### Seed'))]
    assert [h.split(':')[0] for h in heads] == ['### The thesis', '### Seed 003', '### Seed 004']
    order = [body.index(f'</a>{n}\n') for n in ('table1_1_x', 'table4_1_z', 's003_table3_2_y', 's004_table2_1_w', 's004_table6_1_x')]
    assert order == sorted(order)
    assert body.index('### Seed 003') < body.index('</a>s003_table3_2_y') < body.index('### Seed 004')

def test_report_top_summary_links_html_and_what_was_not_reproduced(tmp_path):
    import pandas as pd, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    d = _fake_experiment(tmp_path, 'cpu', 'table1_1_x', ['holds', 'undecided'])
    _fake_experiment(tmp_path, 'cpu', 'table1_2_y', ['does not hold'])
    _fake_experiment(tmp_path, 'cpu', 's004_table6_1_z', ['holds'])
    atomic_write(d/'run.json', json.dumps(dict(status='ok', seconds=75.0)))
    out = Outputs(d, 'table1_1_x', params=dict(scale='cpu'))
    out.table(pd.DataFrame({'a': [1]}), 't'); out.table(pd.DataFrame({'a': [2]}), 't_thesis')
    fig = plt.figure(); plt.plot([0, 1]); out.figure(fig, 'curve'); plt.close(fig); out.finish()
    rep = write_report(tmp_path).read_text()
    top = rep[rep.index('## Verdicts at a glance'):rep.index('## Claims')]
    row = {l.split('|')[1].strip(): [c.strip() for c in l.split('|')[2:-1]] for l in top.splitlines() if l.startswith('| ')}
    assert row['Thesis ch.1'][:3] == ['1', '1', '1'] and row['Seed 004'][:3] == ['1', '0', '0'] and row['**all**'][:3] == ['2', '1', '1']
    assert '1:15' in ' '.join(row['Thesis ch.1'])                              # the notebook's wall time
    assert '[table1_1_x](#cpu-table1_1_x)' in rep and '[t](cpu/table1_1_x/tables/t.csv)' in rep   # claims link to their table
    assert '<a id="cpu-table1_1_x"></a>table1_1_x' in rep
    tail = rep[rep.index('## What could not be reproduced here'):]
    assert '`cpu/table1_1_x/t_thesis`' in tail and 'GPU' in tail
    html = (tmp_path/'REPORT.html').read_text()
    assert html.startswith('<!DOCTYPE html>') and '<table>' in html and 'id="cpu-table1_1_x"' in html
    assert '<img src="cpu/table1_1_x/figures/curve.png"' in html and (tmp_path/'cpu/table1_1_x/figures/curve.png').is_file()
    assert 'href="#cpu-table1_1_x"' in html

def test_check_report_finds_missing_unstamped_and_foreign_tables(tmp_path):
    import subprocess, pandas as pd
    from trustnas_nb.reproduce import check_report, repo_root
    head = subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'], cwd=repo_root(), capture_output=True, text=True).stdout.strip()
    def exp(name, commit):
        d = tmp_path/'cpu'/name
        out = Outputs(d, name, params=dict(scale='cpu')); out.table(pd.DataFrame({'a': [1]}), 't'); out.finish()
        atomic_write(d/'run.json', json.dumps(dict(status='ok', seconds=1.0)))
        m = json.loads((d/'tables/t.meta.json').read_text()); m['git_commit'] = commit
        (d/'tables/t.meta.json').write_text(json.dumps(m)); (d/'executed.ipynb').write_text('{}')
        return d
    exp('table1_1_good', head)
    write_report(tmp_path)
    assert check_report(tmp_path) == []
    exp('table1_2_foreign', 'deadbeef0000')                                # not a commit of this repository
    d = exp('table1_3_dirty', head + '+dirty')
    exp('table1_4_unstamped', head); (tmp_path/'cpu/table1_4_unstamped/tables/t.meta.json').unlink()
    write_report(tmp_path)
    (tmp_path/'cpu/table1_1_good/tables/t.csv').unlink()                  # deleted after the report was written
    probs = '\n'.join(check_report(tmp_path))
    assert "table1_2_foreign/tables/t.csv: stamped with commit 'deadbeef0000', which is not an ancestor of HEAD" in probs
    assert 'table1_3_dirty/tables/t.csv: made from a checkout with uncommitted changes' in probs
    assert 'table1_4_unstamped/tables/t.csv: not stamped' in probs
    assert 'table1_1_good/tables/t.csv: listed in the manifest but missing' in probs
    assert 'table1_3_dirty' not in '\n'.join(check_report(tmp_path, allow_dirty=True))
    assert check_report(tmp_path/'nowhere') == [f"{tmp_path/'nowhere'/'REPORT.md'} does not exist"]
