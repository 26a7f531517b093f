"Seed 003 chapter 4: Table 4.1/4.2 operations, cell templates, latency penalty (Algorithm 3), tournament (Algorithm 2)."
import random
import pytest
import torch
import torch.nn.functional as F
from trustnas_nb.ops import OPS, S003_OPS, S003_SPACE_OPS, make_op, get_space, uniform_space
from trustnas_nb.supernet import build_supernet
from trustnas_nb.evalnet import build_network
from trustnas_nb.genotypes import Genotype, GenotypeError
from trustnas_nb.search import SearchResult
import trustnas_nb.xdarts as xd
from trustnas_nb.xdarts import (TEMPLATES, template_weights, discretize, node_inputs, apply_template, genotype_latency,
                                expected_latency, cell_counts, merge_sets, node_ranking, measure_latency_table, S003_TABLE_4_6,
                                check_latency_options)

pytestmark = pytest.mark.usefixtures('one_thread')   # tiny tensors: one thread, immune to a busy machine

ALL_S003 = sorted({o for ops in S003_SPACE_OPS.values() for o in ops})


# --- Tables 4.1 / 4.2: operations and spaces ---
@pytest.mark.parametrize('name', ALL_S003)
def test_s003_op_shapes(name):
    x = torch.randn(2, 4, 8, 8)
    for search in (True, False):
        assert make_op(name, 4, 1, affine=not search, search=search)(x).shape == (2, 4, 8, 8)
        assert make_op(name, 4, 2, affine=not search, search=search)(x).shape == (2, 4, 4, 4)

def test_s003_spaces_match_tables():
    sp = S003_SPACE_OPS
    for k in ('icdarts_ops1', 'icdarts_ops2', 'icdarts_ops3', 'icdarts_ops4'):   # Table 4.1: * ops in every space
        assert {'skip_connect', 'max_pool_3x3', 'avg_pool_3x3'} <= set(sp[k]) and 'none' not in sp[k]
    assert set(sp['icdarts_ops3']) - {'skip_connect', 'max_pool_3x3', 'avg_pool_3x3'} == {'sep_conv_3x3', 'sep_conv_5x5', 'dil_conv_3x3', 'dil_conv_5x5'}
    assert len(sp['icdarts_ops1']) == 3 + 4 + 5 and len(sp['icdarts_ops2']) == 3 + 6 and len(sp['icdarts_ops4']) == 3 + 3
    # Table 4.2: 6 parameterless + 9 two-kernel pairs + MBConvV2 (2 k x 3 g) + Fused (3 g) = 33, no duplicates
    assert len(sp['icdarts_dynamic']) == len(set(sp['icdarts_dynamic'])) == 6 + 18 + 6 + 3
    assert set(sp['icdarts_dynamic']) <= set(OPS)

@pytest.mark.parametrize('space', list(S003_SPACE_OPS))
def test_s003_spaces_build_in_supernet(space):
    net = build_supernet(space, C=2, layers=3, n_nodes=1, num_classes=3)
    y = net(torch.randn(2, 3, 4, 4)); y.sum().backward()
    assert y.shape == (2, 3) and net.alpha_normal.grad is not None
    assert net.alpha_normal.shape == (2, len(S003_SPACE_OPS[space]))


# --- cell templates (§4.2) ---
def _alphas(sp, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = len(sp.ops()[0])
    return torch.randn(sp.n_edges, n, generator=g), torch.randn(sp.n_edges, n, generator=g)

def test_node_softmax_sums_to_one_per_node():
    sp = get_space('icdarts_ops3'); a, _ = _alphas(sp)
    W = template_weights(a, sp, 'xdarts')
    for idx in xd.node_edges(sp): assert float(W[idx].sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(template_weights(a, sp, 'darts').sum(1), torch.ones(sp.n_edges))
    # the node softmax = per-edge softmax x softmax over edges of logsumexp (a hand decomposition)
    idx = xd.node_edges(sp)[2]
    want = F.softmax(a[idx], -1) * F.softmax(torch.logsumexp(a[idx], -1), 0)[:, None]
    assert torch.allclose(W[idx], want, atol=1e-6)

def test_discretize_counts_and_strongest_pairs():
    sp = get_space('icdarts_ops3'); a, r = _alphas(sp)
    assert node_inputs('xdarts', 4) == (2, 3, 4, 5) and node_inputs('idarts', 3) == (2, 2, 2)
    gx, gi, gd = (discretize(a, r, sp, t) for t in ('xdarts', 'idarts', 'darts'))
    assert len(gx.normal) == len(gx.reduce) == 14 and len(gi.normal) == len(gd.normal) == 8
    W = template_weights(a, sp, 'xdarts'); ops = sp.ops()[0]
    idx = xd.node_edges(sp)[3]                      # node 3: the 5 strongest (input, op) pairs of its 5 x 7
    top = sorted(((float(W[e, o]), sp.edges[e][0], ops[o]) for e in idx for o in range(len(ops))), reverse=True)[:5]
    assert sorted((op, j) for _, j, op in top) == sorted(gx.normal[9:14])
    assert gi.normal[:2] == gx.normal[:2]           # node 0 keeps 2 pairs under both node-softmax templates

@pytest.mark.parametrize('template', TEMPLATES)
def test_template_builds_and_runs(template):
    sp = get_space('icdarts_ops3', 3)
    net = apply_template(build_supernet(sp, C=2, layers=3, num_classes=5), template)
    y = net(torch.randn(2, 3, 4, 4)); y.sum().backward()
    assert y.shape == (2, 5) and net.alpha_normal.grad.abs().sum() > 0
    W = net.op_weights('normal')
    assert torch.allclose(W, template_weights(net.alpha_normal, sp, template))
    g = net.genotype()
    assert len(g.normal) == sum(node_inputs(template, 3))
    kw = {'node_inputs': node_inputs(template, 3)} if template == 'xdarts' else {}
    ev = build_network(g, C=2, layers=3, num_classes=5, **kw)
    assert ev(torch.randn(2, 3, 4, 4)).shape == (2, 5)
    if template == 'xdarts':
        ops_per_node = [len(c.dag._ops) for c in ev.cells[:1]]
        assert ops_per_node == [2 + 3 + 4]

def test_evalnet_node_inputs_default_unchanged_and_checked():
    g = discretize(*_alphas(get_space('icdarts_ops3')), 'icdarts_ops3', 'darts')
    torch.manual_seed(0); a = build_network(g, C=4, layers=3)
    torch.manual_seed(0); b = build_network(g, C=4, layers=3, node_inputs=(2, 2, 2, 2))
    x = torch.randn(2, 3, 8, 8); a.eval(); b.eval()
    assert torch.equal(a(x), b(x))
    with pytest.raises(GenotypeError, match='node_inputs'): build_network(g, C=4, layers=3, node_inputs=(2, 3, 4, 5))
    with pytest.raises(ValueError, match='node_inputs'): build_network(g, C=4, layers=3, node_inputs=(0, 8))


# --- latency: Table 4.6 look-up and Algorithm 3 ---
def test_genotype_latency_is_sum_of_table_entries():
    sp = get_space('icdarts_ops3'); g = discretize(*_alphas(sp), sp, 'xdarts')
    want = sum(S003_TABLE_4_6[o] for o, _ in g.normal) + sum(S003_TABLE_4_6[o] for o, _ in g.reduce)
    assert genotype_latency(g, S003_TABLE_4_6) == pytest.approx(want)
    assert genotype_latency(g, S003_TABLE_4_6, {'normal': 3, 'reduce': 2}) == pytest.approx(
        3 * sum(S003_TABLE_4_6[o] for o, _ in g.normal) + 2 * sum(S003_TABLE_4_6[o] for o, _ in g.reduce))
    with pytest.raises(ValueError, match='latency table'): genotype_latency(g, {'skip_connect': 1.0})

def test_measured_table_is_normalized_and_ranks_convs_above_identity():
    t = measure_latency_table(C=16, size=16, batch=8, repeat=10, iters=2, reps=3)
    assert set(t) == set(S003_TABLE_4_6) and sum(t.values()) == pytest.approx(1.0)
    assert t['sep_conv_5x5'] > t['skip_connect']

def test_expected_latency_hand_value_one_node():
    # one intermediate node, 2 inputs (cell inputs only), DARTS template, uniform α: P = C * sum_e mean_o L_o
    sp = uniform_space('one', ('skip_connect', 'sep_conv_3x3', 'max_pool_3x3'), n_nodes=1)
    W = {'normal': template_weights(torch.zeros(2, 3), sp, 'darts')}
    L = S003_TABLE_4_6
    P = expected_latency(W, sp, L, {'normal': 3})
    assert float(P) == pytest.approx(3 * 2 * (L['skip_connect'] + L['sep_conv_3x3'] + L['max_pool_3x3']) / 3)

def test_expected_latency_chains_earlier_nodes():
    # two nodes; node 1 reads node 0, so its latency adds l^c_0 on that input (Algorithm 3, k >= 2)
    sp = uniform_space('two', ('skip_connect', 'sep_conv_5x5'), n_nodes=2)
    a = torch.full((sp.n_edges, 2), -30.0); a[:, 1] = 30.0          # all weight on sep_conv_5x5
    W = template_weights(a, sp, 'darts')
    L = {'skip_connect': 0.0, 'sep_conv_5x5': 1.0}
    lc0 = 2 * 1.0; lc1 = 3 * 1.0 + lc0                             # node 1: 3 inputs, one of them node 0
    lc = torch.tensor([lc0, lc1])
    want = float((lc * F.softmax(lc, 0)).sum())
    assert float(expected_latency({'normal': W}, sp, L, {'normal': 1})) == pytest.approx(want, rel=1e-5)

@pytest.mark.parametrize('template', TEMPLATES)
def test_latency_penalty_gradient_sign(template):
    "dP/dα_eo has the sign of (latency of pair eo − the weighted mean latency it competes with): cheaper pairs are pushed up."
    sp = get_space('icdarts_ops3')
    net = build_supernet(sp, C=2, layers=3)
    with torch.no_grad():
        for k in net.cell_kinds: getattr(net, f'alpha_{k}').normal_(0, 1, generator=torch.Generator().manual_seed(1))
    def P_of():
        return expected_latency({k: template_weights(getattr(net, f'alpha_{k}'), sp, template) for k in net.cell_kinds},
                                sp, S003_TABLE_4_6, cell_counts(net))
    P = P_of(); P.backward()
    ops = sp.ops()[0]; L = torch.tensor([S003_TABLE_4_6[o] for o in ops])
    for k in net.cell_kinds:
        a = getattr(net, f'alpha_{k}'); g = a.grad
        assert torch.isfinite(g).all() and g.abs().sum() > 0
        W = template_weights(a.detach(), sp, template)
        lc, lpair = [], torch.zeros_like(W)                    # pair latencies: table row + the source node's latency
        for j, idx in enumerate(xd.node_edges(sp)):
            for e in idx:
                src = sp.edges[e][0]
                lpair[e] = L + (lc[src - 2] if src >= 2 else 0.0)
            lc.append(float((lpair[idx] * W[idx]).sum()))
        for idx in xd.node_edges(sp):
            groups = [idx] if template != 'darts' else [[e] for e in idx]
            for grp in groups:
                mean = (lpair[grp] * W[grp]).sum() / W[grp].sum()
                d = lpair[grp] - mean
                sure = d.abs() > 1e-4
                assert torch.equal(torch.sign(g[grp])[sure], torch.sign(d)[sure])
    with torch.no_grad():                                       # one gradient step on α lowers P
        for k in net.cell_kinds: getattr(net, f'alpha_{k}').sub_(1.0 * getattr(net, f'alpha_{k}').grad)
    assert float(P_of().detach()) < float(P.detach())

def test_latency_options_checked():
    base = dict(delta=0.1, template='xdarts', base='icdarts', table='seed', scale='ci', icdarts=None, latency_C=4, latency_size=8, latency_reps=1)
    assert check_latency_options(base)['delta'] == 0.1
    with pytest.raises(ValueError, match='delta'): check_latency_options({**base, 'delta': -1})
    with pytest.raises(ValueError, match='template'): check_latency_options({**base, 'template': 'pdarts'})
    with pytest.raises(ValueError, match='unknown'): check_latency_options({**base, 'bogus': 1})


# --- tournament (Algorithm 2) ---
def test_merge_sets_keeps_top_halves_and_fills():
    a, b = ['c', 'a', 'x', 'y'], ['d', 'e', 'f', 'g']
    assert merge_sets(a, b, 4) == ['c', 'a', 'd', 'e']
    # overlapping halves: topped up with the next-strongest, alternating
    assert merge_sets(['a', 'b', 'c', 'd'], ['a', 'e', 'f', 'g'], 4) == ['a', 'b', 'e', 'c']

def test_tournament_rounds(monkeypatch, tmp_path):
    "tiers=2, o_max=4: 2 first-tier games on random 4-op sets, each keeps 2 per node; the final game searches their union."
    calls = []
    def fake_run_search(m, sp, scale, seed, device, progress, **kw):
        calls.append(sp)
        # deterministic strengths: alphabetical order of op names is the ranking
        al = {}
        for k, red in (('normal', False), ('reduce', True)):
            ops = sp.ops(red)
            al[k] = torch.stack([torch.tensor([-sorted(ops[e]).index(o) for o in ops[e]], dtype=torch.float) for e in range(sp.n_edges)])
        g = discretize(al['normal'], al['reduce'], sp, 'darts')
        return SearchResult('icdarts', sp.name, seed, g, [dict(epoch=1, step_seconds=0.1)], al, 0.0, 0, None)
    monkeypatch.setattr(xd, 'run_search', fake_run_search)
    import json
    from trustnas_nb.core import progress_to
    progress_to(tmp_path/'p.jsonl')
    try: r = xd.tournament_search(scale='ci', seed=3, progress=False, options=dict(tiers=2, o_max=4))
    finally: progress_to(None)
    assert len(calls) == 3 and [g['tier'] for g in r.games] == [2, 2, 1]
    # one progress event per game (the throttle may drop the middle one; the first and the last always pass)
    evs = [tuple(e[k] for k in ('what', 'done', 'total', 'method', 'seed', 'tier', 'game'))
           for e in map(json.loads, (tmp_path/'p.jsonl').read_text().splitlines())]
    every = [('tournament tournament', i + 1, 3, 'tournament', 3, t, g) for i, (t, g) in enumerate([(2, 0), (2, 1), (1, 0)])]
    assert evs[0] == every[0] and evs[-1] == every[-1] and evs == [e for e in every if e in evs]
    first, second, final = r.games
    pool = set(S003_SPACE_OPS['icdarts_dynamic'])
    for g in (first, second):
        for k in ('normal', 'reduce'):
            for s, kept in zip(g['sets'][k], g['kept'][k]):
                assert len(s) == 4 and len(set(s)) == 4 and set(s) <= pool
                assert kept == sorted(s)[:2]                         # the top 50% by α
    for k in ('normal', 'reduce'):
        for i, s in enumerate(final['sets'][k]):
            union = set(first['kept'][k][i]) | set(second['kept'][k][i])
            assert len(s) == 4 and union <= set(s)                   # the next tier plays the winners
    assert r.genotype == final['genotype'] and all('step_seconds' in h for h in r.history)
    assert len(r.genotype.normal) == 2 * get_space('icdarts_dynamic', 2).n_nodes   # ci: 2 nodes, 2 inputs each
    r2 = xd.tournament_search(scale='ci', seed=3, progress=False, options=dict(tiers=2, o_max=4))
    assert r2.games[0]['sets'] == first['sets']                      # same seed, same draw

def test_tournament_bad_options():
    with pytest.raises(ValueError, match='o_max'): xd.tournament_search(scale='ci', options=dict(o_max=1))
    with pytest.raises(ValueError, match='tiers'): xd.tournament_search(scale='ci', options=dict(tiers=0))
    with pytest.raises(ValueError, match='unknown tournament'): xd.tournament_search(scale='ci', options=dict(foo=1))


# --- end to end through the driver (tiny) ---
TINY = dict(image_size=8, n_train=32, n_val=32)

def test_latency_extension_lowers_expected_latency():
    "Same seed, same data: with a large δ the search ends with a lower P(α) than with δ = 0 (penalty acts on α)."
    ext = dict(table='seed', icdarts=dict(S_U=1, S_E=1, pretrain_steps=0))
    res = {d: xd.template_search('xdarts', d, 'icdarts_ops3', scale='ci', seed=0, progress=False, extension=ext, **TINY)
           for d in (0.0, 50.0)}
    sp = get_space('icdarts_ops3', 2)
    P = {d: float(expected_latency(r.alphas, sp, S003_TABLE_4_6, {'normal': 1, 'reduce': 2})) for d, r in res.items()}
    assert P[50.0] < P[0.0]
    r = res[50.0]
    assert len(r.genotype.normal) == 2 + 3 and r.history[-1]['template'] == 'xdarts' and 'step_seconds' in r.history[-1]
    assert r.history[-1]['expected_latency'] > 0 and 'eval_acc' in r.history[-1]       # the ICDARTS base ran
    again = xd.template_search('xdarts', 50.0, 'icdarts_ops3', scale='ci', seed=0, progress=False, extension=ext, **TINY)
    assert again.genotype == r.genotype and torch.equal(again.alphas['normal'], r.alphas['normal'])

def test_tournament_through_the_driver():
    from trustnas_nb.search import run_search
    r = run_search('tournament', 'icdarts_ops3', scale='ci', seed=0, progress=False,
                   extension=dict(tiers=2, o_max=2, icdarts=dict(S_U=1, S_E=1, pretrain_steps=0)), **TINY)
    assert [g['tier'] for g in r.games] == [2, 2, 1] and r.method == 'tournament'
    for g in r.games:
        for k in ('normal', 'reduce'): assert all(len(s) == 2 and len(kept) == 1 for s, kept in zip(g['sets'][k], g['kept'][k]))
    assert {h['tier'] for h in r.history} == {1, 2} and all('step_seconds' in h for h in r.history)


def test_seed_table_is_the_frame_it_was():
    "`seed_table` (now `reference.table_frame`) returns the frame the former inline code built: first column unprefixed."
    import pandas as pd
    want = pd.DataFrame([('darts', 97.13, 0.14, 0.10, 0.01), ('idarts', 96.87, 0.27, 0.10, 0.01), ('xdarts', 97.21, 0.09, 0.17, 0.01)],
                        columns=['template', 'seed_test_acc', 'seed_test_acc_std', 'seed_latency', 'seed_latency_std'])
    pd.testing.assert_frame_equal(xd.seed_table('s003_table4_5'), want, check_exact=True)
    d = xd.seed_table('s003_table4_7', prefix='')
    assert list(d.columns) == ['delta', 'test_acc', 'test_acc_std', 'latency', 'latency_std', 'runs'] and str(d.runs.dtype) == 'int64'
    with pytest.raises(ValueError, match=r"^unknown seed-003 table 'nope'; expected one of s003_table4_3, s003_table4_4"):
        xd.seed_table('nope')
