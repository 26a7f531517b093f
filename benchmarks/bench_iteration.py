#!/usr/bin/env python
"""Cost of one search iteration of a thesis method against the core's second-order DARTS iteration, by suite:

* `--suite dsrna` (default; thesis §1.4.3 "Runtime"): DSRNA-Jacobian / -CB / -Combined, results_dsrna.md;
* `--suite sanas` (thesis §4.7 "efficiency", supplement A.4): a SANAS-darts2nd iteration *amortized over its update
  schedule* (A every 5 mini-batches, W2 and δ every 3, W1 every one: the mean over one period of 15 iterations),
  results_sanas.md. The thesis: 4.6 vs 4.0 GPU-days (Table 4.1); target <= 1.5x time.
* `--suite text` (thesis §4.4.2): the same comparison on the 1-D text space and the embedded sentiment sentences
  (SANAS on Gumbel-softmax relaxed one-hot columns vs plain second-order DARTS on token ids), results_text.md.
* `--suite lbg` (thesis ch.2, Table 2.4): one LBG-NAS iteration with K = 2 expert supernets (and the GAM) against one
  second-order DARTS iteration of the same supernet; target 1.3x two DARTS iterations, results_lbg.md.
* `--suite iuc` (thesis ch.3): one IUC-E search iteration (Algorithm 3: encoder-decoder, the predictive captioner on
  soft pseudo-captions, the encoder's α through both unrolls) against one second-order DARTS iteration of the same
  encoder supernet; target 2x time and memory; and captions decoded per second with beam 3, results_iuc.md.
* `--suite seeds` (issue 18, seeds 003/004): one search iteration of each neighbouring method (CDARTS, ICDARTS, DARTS
  with the latency penalty, iDARTS, BaLeNAS; the single-path drivers NSAS and EN2AS: one supernet step; E2NAS: one
  latent-space step with its supernet training, timed per epoch by the driver; the tournament's iterations are ICDARTS
  iterations on fewer operations, so it has no row of its own) against one
  second-order DARTS iteration, at the `paper` presets of each method on a smaller supernet than DARTS' (C=16, 5 cells,
  16x16 inputs, batch 32), results_seeds.md. No targets: the seeds give GPU-days on other hardware (in the table).

The DSRNA suite:

At the DARTS search configuration (supernet C=16, 8 cells, 4 intermediate nodes, 3x32x32 inputs, batch 64 for every
method, 2 CPU threads) each mode runs `trustnas_nb.search.run_search` for one epoch of `--steps` iterations on the
embedded CIFAR-10 stand-in (objects10 at 32x32), in its own process, and reads the driver's own per-iteration times
(`history[-1]['step_seconds']`: one `MLOProblem.step`, i.e. the α update and the w update):

    darts_2nd        DARTS, second-order (finite-difference) hypergradient: the baseline
    pcdarts          PC-DARTS (first order, partial channels K=4, edge normalization): DSRNA's base (Algorithm 1)
    dsrna_jacobian   + Jacobian-norm metric (one random projection, double backpropagation)
    dsrna_cb         + certified-bound metric (the `paper` preset's bound method and sub-batch)
    dsrna_combined   + both

The first iteration (warm-up; for CB it includes the one-off torch.export trace) is reported apart; the median of
the others is compared with darts_2nd's, as is the process's peak RSS (ru_maxrss). The thesis: CB 4.0 GPU-days,
Jacobian 0.4, DARTS (2nd) 4.0 (Table 1.2). Targets: Jacobian <= 1.3x and CB <= 2x the DARTS (2nd) iteration, memory
<= 2x its.

Run it alone on the machine (other jobs on the CPU make timings meaningless):

    python benchmarks/bench_iteration.py                          # writes benchmarks/results_dsrna.md
    python benchmarks/bench_iteration.py --suite sanas            # writes benchmarks/results_sanas.md
    python benchmarks/bench_iteration.py --quick --out /tmp/q.md  # tiny sizes: a check of the script
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import _peak_rss_bytes, _cpu_model

HERE = Path(__file__).resolve().parent
TAG = '@@RESULT '
SUITES = {   # modes, time targets (x DARTS 2nd), memory target, iterations, statistic over the timed iterations, thesis line
    'dsrna': dict(modes=('darts_2nd', 'pcdarts', 'dsrna_jacobian', 'dsrna_cb', 'dsrna_combined'),
                  targets={'dsrna_jacobian': 1.3, 'dsrna_cb': 2.0, 'dsrna_combined': 2.0}, mem=2.0, steps=4, stat='median',
                  title='DSRNA search-iteration benchmark',
                  thesis='Thesis (Table 1.2, GPU-days on a GTX 1080Ti): DARTS (2nd) 4.0, DSRNA-CB 4.0, DSRNA-Jacobian 0.4, DSRNA-Combined 0.6.'),
    'sanas': dict(modes=('darts_2nd', 'sanas_darts2nd'), targets={'sanas_darts2nd': 1.5}, mem=2.0, steps=16, stat='mean',
                  title='SANAS search-iteration benchmark',
                  thesis='Thesis (Table 4.1, GPU-days on a 1080Ti): Darts2nd 4.0, SANAS-darts2nd (Ours-darts2nd) 4.6 (1.15x).'),
    'text': dict(modes=('darts_2nd', 'sanas_darts2nd'), targets={'sanas_darts2nd': 1.5}, mem=2.0, steps=16, stat='mean',
                 title='Text SANAS search-iteration benchmark', space='text', dataset='sentiment',
                 full=dict(C=32, layers=3, nodes=3, image=24, batch=32),   # 32: the sentiment search half holds 25 batches (>= 16 steps)
                 thesis='The thesis gives no search cost for text (Table 4.6 reports inference speed-ups only); the image rows '
                        'of Table 4.1 put SANAS at 1.15x DARTS (2nd).'),
    'lbg': dict(modes=('darts_2nd', 'lbg_darts2nd'), targets={'lbg_darts2nd': 2.6}, mem=2.0, steps=4, stat='median',
                title='LBG-NAS search-iteration benchmark',
                thesis='Thesis (Table 2.4, CIFAR-10 search cost in V100 GPU-days): DARTS 1.5, LBG-DARTS 1.6, DALBG-DARTS 2.0. Target (the '
                       'issue): one LBG-NAS iteration with K = 2 within 1.3x the cost of two DARTS (2nd) iterations of the same '
                       'supernet, i.e. 2.6x one; memory within 2x one DARTS (2nd) process (two supernets).'),
    'iuc': dict(modes=('darts_2nd', 'iuc_e'), targets={'iuc_e': 2.0}, mem=2.0, steps=4, stat='median',
                title='IUC-E search-iteration benchmark', dataset='objects10',
                thesis='The thesis gives no search cost for IUC. Target (the issue): one IUC-E iteration within 2x one DARTS (2nd) '
                       'iteration of the same encoder supernet, memory within 2x; the decoders (attention LSTM, embedding 32, '
                       'hidden 64, captions of the embedded shapes scenes, 23 steps) are small beside the 8-cell encoder.'),
    'seeds': dict(modes=('darts_2nd', 'cdarts', 'icdarts', 'darts_latency', 'idarts', 'balenas', 'nsas', 'en2as', 'e2nas'), targets={},
                  mem=2.0, steps=4, stat='median', title='Neighbouring methods (seeds 003/004): search-iteration benchmark',
                  full=dict(C=16, layers=5, nodes=4, image=16, batch=32),
                  thesis='The seeds report search costs on their own GPUs (003: ICDARTS, Tables 3.2-3.7; 004: EN2AS 0.1, NSAS 0.3-0.4, '
                         'BaLeNAS 0.6, iDARTS 0.4-0.6 GPU-days, Tables 2.1, 3.1, 5.1, 6.1), not per-iteration ratios; ours are measured '
                         'here, one process per method, in the same run.'),
}
MODES = tuple(dict.fromkeys(m for S in SUITES.values() for m in S['modes']))
FULL = dict(C=16, layers=8, nodes=4, image=32, batch=64)
QUICK = dict(C=4, layers=3, nodes=2, image=8, batch=8, steps=2, out='')

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true')
    p.add_argument('--suite', default='dsrna', choices=sorted(SUITES))
    p.add_argument('--modes', default=None, help="comma-separated modes (default: the suite's)")
    for k in ('C', 'layers', 'nodes', 'image', 'batch', 'steps'): p.add_argument(f'--{k}', type=int, default=None)
    p.add_argument('--dataset', default=None, help="embedded dataset of the inputs (default: the suite's, objects10 for images)")
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--timeout', type=float, default=1800)
    p.add_argument('--out', default=None)
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    p.add_argument('--cfg', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child: return a
    S = SUITES[a.suite]
    full = dict(FULL, **S.get('full', {}), steps=S['steps'], out=str(HERE/f'results_{a.suite}.md'))
    if a.dataset is None: a.dataset = S.get('dataset', 'objects10')
    a.space = S.get('space', 'darts')
    quick = dict(QUICK, image=24) if S.get('space') == 'text' else QUICK      # the sentiment sentences need >= 20 tokens
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None: setattr(a, k, v)
    a.modes = [m.strip() for m in (a.modes or ','.join(S['modes'])).split(',') if m.strip()]
    bad = [m for m in a.modes if m not in MODES]
    if bad: p.error(f'unknown mode(s) {bad}; expected some of {", ".join(MODES)}')
    if a.steps < 2: p.error('--steps must be >= 2 (the first is the warm-up)')
    return a

def child(mode, c):
    import torch
    torch.set_num_threads(c['threads'])
    from trustnas_nb.search import run_search
    n = c['batch'] * (c['steps'] + 1)
    over = dict(dataset=c['dataset'], image_size=c['image'], C=c['C'], layers=c['layers'], nodes=c['nodes'], batch_size=c['batch'],
                n_train=n, n_val=n, epochs=1, max_steps=c['steps'])
    kw = {}
    if mode.startswith('dsrna'):
        from trustnas_nb.core import preset
        D = preset('paper', 'dsrna')
        kw['robust'] = dict(warmup_epochs=0, cb={**D['cb'], 'batch_size': c['batch']}, jacobian={**D['jacobian'], 'batch_size': c['batch']})
    t0 = time.perf_counter()
    if mode == 'lbg_darts2nd':            # LBG-NAS (ch.2): K = 2 supernets of the DARTS search configuration, a ResNet-8 GAM
        from trustnas_nb.lbg import lbg_search
        r = lbg_search('darts_2nd', K=2, lam=0.0, scale='paper', seed=0, progress=False, gam_width=16, **over)
        st = [s for h in r.history.step_seconds for s in h]
        print(TAG + json.dumps(dict(mode=mode, steps=st, total_s=time.perf_counter() - t0, peak_rss=_peak_rss_bytes(),
                                    supernet_params=r.supernet_params, threads=torch.get_num_threads())), flush=True)
        return
    if mode == 'iuc_e':                   # IUC-E (ch.3): the DARTS encoder supernet of the configuration + attention-LSTM decoders
        res = _iuc_child(c, t0)
        print(TAG + json.dumps(res), flush=True)
        return
    if mode in ('cdarts', 'icdarts'):        # the one-off pre-training (780 steps) and E's warm-up (390) are not iterations
        kw['extension'] = dict(pretrain_steps=0, S_E=0)
    if mode == 'darts_latency':              # the same for its ICDARTS base
        kw['extension'] = dict(icdarts=dict(pretrain_steps=0, S_E=0))
    if mode in ('nsas', 'en2as'):            # the search on the trained supernet (1,000 candidates at paper) is not an iteration
        kw['extension'] = dict(n_candidates=2, population=2, tournament=1, val_batches=1)
    if mode == 'e2nas':                      # the VGAE's one-off training is not an iteration; one latent-space step per epoch
        kw['extension'] = dict(vgae_archs=200, vgae_epochs=2, val_batches=1); over['epochs'] = c['steps']
    if mode == 'pcdarts':
        import trustnas_nb.core as core      # the paper preset's PC-DARTS warm-up would freeze α for the whole epoch
        core.PRESETS['paper']['pcdarts'] = dict(core.PRESETS['paper']['pcdarts'], warmup_epochs=0, batch_size=c['batch'])
    r = run_search(mode, c.get('space', 'darts'), scale='paper', seed=0, progress=False, **over, **kw)
    # a DARTS-loop method logs its iterations in the epoch's row; a driver (single-path one-shot) in every row that has them
    flat = lambda v: list(v) if isinstance(v, (list, tuple)) else [] if v is None else [float(v)]   # E2NAS: one mean per epoch
    st = r.history[-1]['step_seconds'] if isinstance(r.history[-1].get('step_seconds'), list) else \
         [s for h in r.history for s in flat(h.get('step_seconds'))]
    if len(st) < 2: raise SystemExit(f'{mode}: the search logged {len(st)} per-iteration times (step_seconds); need >= 2')
    res = dict(mode=mode, steps=st, total_s=time.perf_counter() - t0, peak_rss=_peak_rss_bytes(),
               supernet_params=r.supernet_params, threads=torch.get_num_threads())
    from trustnas_nb.core import preset
    if mode.startswith('dsrna'):
        D = preset('paper', 'dsrna'); res.update(cb_method=D['cb_method'], cb_batch=D['cb_batch'], n_proj=D['n_proj'])
    print(TAG + json.dumps(res), flush=True)

def _iuc_child(c, t0):
    import torch
    from trustnas_nb.iuc import IUCChain, caption_data
    from trustnas_nb.captioning import build_captioner, beam_search
    n = c['batch'] * (c['steps'] + 1)
    data = caption_data(seed=0, n_labeled=n, n_unlabeled=n, n_val=n, n_test=c['batch'], image_size=max(12, c['image']), max_objects=2)
    V = len(data['vocab'])
    torch.manual_seed(0)
    ef = build_captioner('search', 'lstm', vocab_size=V, C=c['C'], layers=c['layers'], n_nodes=c['nodes'], embed_dim=32, hidden=64)
    w = build_captioner('cnn', 'lstm', vocab_size=V, embed_dim=32, hidden=64, cnn_width=16)
    chain = IUCChain(ef, w, 'E', steps=data['max_len'] - 1)
    lab, unl, val = data['labeled'], data['unlabeled'], data['val']
    st = []
    for i in range(c['steps']):
        sl = slice(i * c['batch'], (i + 1) * c['batch'])
        t = time.perf_counter()
        chain.step((lab.x[sl], lab.tokens[sl]), unl.x[sl], (val.x[sl], val.tokens[sl]))
        st.append(time.perf_counter() - t)
    ef.eval()
    x = data['test'].x
    beam_search(ef, x[:2], beam=3, max_len=data['max_len'] - 1)          # warm-up
    t = time.perf_counter(); seqs, _ = beam_search(ef, x, beam=3, max_len=data['max_len'] - 1); dt = time.perf_counter() - t
    return dict(mode='iuc_e', steps=st, total_s=time.perf_counter() - t0, peak_rss=_peak_rss_bytes(),
                supernet_params=sum(p.numel() for _, p in ef.named_weights()), threads=torch.get_num_threads(),
                captions_per_s=len(seqs) / dt, caption_batch=len(seqs))

def run_mode(a, mode):
    cfg = json.dumps({k: getattr(a, k) for k in ('C', 'layers', 'nodes', 'image', 'batch', 'steps', 'threads', 'dataset', 'space')})
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    try:
        p = subprocess.run([sys.executable, __file__, '--child', mode, '--cfg', cfg], capture_output=True, text=True,
                           timeout=a.timeout, env=env)
    except subprocess.TimeoutExpired: return dict(mode=mode, error=f'timeout ({a.timeout:.0f} s)')
    lines = [l for l in p.stdout.splitlines() if l.startswith(TAG)]
    if not lines: return dict(mode=mode, error=(p.stderr.strip().splitlines() or ['no output'])[-1][:200])
    return json.loads(lines[-1][len(TAG):])

def table(a, res) -> str:
    S = SUITES[a.suite]
    TARGETS, MEM_TARGET = S['targets'], S['mem']
    base = next((r for r in res if r['mode'] == 'darts_2nd' and 'error' not in r), None)
    med = (lambda r: statistics.median(r['steps'][1:])) if S['stat'] == 'median' else (lambda r: statistics.fmean(r['steps'][1:]))
    head = (f"| mode | warm-up s | {S['stat']} s / iteration | × DARTS (2nd) | peak RSS GB | × DARTS (2nd) memory | target | meets |\n"
            '|---|---|---|---|---|---|---|---|')
    rows = []
    for r in res:
        if 'error' in r: rows.append(f"| {r['mode']} | — | — | — | — | — | — | not run: {r['error']} |"); continue
        m, gb = med(r), r['peak_rss'] / 2**30
        tr = m / med(base) if base else float('nan'); mr = r['peak_rss'] / base['peak_rss'] if base else float('nan')
        tgt = TARGETS.get(r['mode'])
        ok = '' if tgt is None else ('yes' if tr <= tgt and mr <= MEM_TARGET else 'no')
        rows.append(f"| {r['mode']} | {r['steps'][0]:.2f} | {m:.2f} | {tr:.2f} | {gb:.2f} | {mr:.2f} | "
                    f"{'—' if tgt is None else f'≤ {tgt}× time, ≤ {MEM_TARGET}× memory'} | {ok} |")
    extra = next((r for r in res if r.get('cb_method')), {})
    return '\n'.join([
        f"# {S['title']}", '',
        f'Produced by `benchmarks/bench_iteration.py --suite {a.suite}` on {datetime.now(timezone.utc).isoformat(timespec="seconds")}, '
        f'{_cpu_model()}, {a.threads} threads, torch {__import__("torch").__version__}, Python {platform.python_version()}.', '',
        f'Configuration: space {a.space}, supernet C={a.C}, {a.layers} cells, {a.nodes} nodes, '
        + (f'inputs 3×{a.image}×{a.image} ({a.dataset})' if a.space != 'text' else
           f"sentences of {a.image} tokens ({a.dataset}; the `paper` preset's text settings: embedding "
           f"{__import__('trustnas_nb.core', fromlist=['preset']).preset('paper', 'text')['embed_dim']}; a smaller supernet than the paper's, for a CPU)")
        + f', batch {a.batch} for every method, {a.steps} iterations per mode (the first is the warm-up, which '
        + (f"for CB includes the torch.export trace); CB: `{extra.get('cb_method', '?')}` on the first {extra.get('cb_batch', '?')} "
           f"validation inputs of the batch; Jacobian: {extra.get('n_proj', '?')} projection(s). One iteration = the α update "
           'and the w update of `MLOProblem.step`, timed by the driver.' if a.suite == 'dsrna' else
           "is also the one where every level is due). One iteration = one `MLOProblem.step`: DARTS' w and α updates; LBG-NAS' "
           "updates of the GAM, the two experts' weights, and C with both A_k through the two unrolls (Algorithm 2), timed by "
           "`lbg.fit_lbg`; the LBG-NAS target is 1.3x two DARTS iterations, i.e. 2.6x in the ratio column." if a.suite == 'lbg' else
           "is also the one where every level is due). One iteration = one `IUCChain.step`: E and F, then W on soft pseudo-captions "
           "of unlabeled images, then the encoder's α through both unrolls (finite differences), timed by the driver; "
           + ''.join(f"beam-3 decoding of the trained-from-scratch searchable captioner: {r['captions_per_s']:.1f} captions/s "
                     f"(a batch of {r['caption_batch']} images)." for r in res if r.get('captions_per_s')) if a.suite == 'iuc' else
           "is also the one where every level is due). One iteration = one `MLOProblem.step` (w and α updates) of the DARTS loop "
           "with the method's `SearchExtension` (ICDARTS: + the intermediate evaluation network's update, and its rebuild when due; "
           "iDARTS: the Neumann hypergradient; BaLeNAS: VAdam and the sampled α); for the single-path drivers one supernet step; "
           "timed by the driver." if a.suite == 'seeds' else
           "is also the one where every level is due). One iteration = one `MLOProblem.step` of the chain, timed by the driver; "
           "SANAS' levels are due on different iterations, so its cost is the mean over one period of its schedule "
           f"({a.steps - 1} iterations), DARTS' the mean of identical iterations.")
        + ' Each mode ran in its own process; peak RSS is its `ru_maxrss`.', '', head, *rows, '', S['thesis'], ''])

def main(argv=None):
    a = parse(argv)
    if a.child: return child(a.child, json.loads(a.cfg))
    res = []
    for m in a.modes:
        t = time.perf_counter(); r = run_mode(a, m); res.append(r)
        print(f"{m:15s} {'error: ' + r['error'] if 'error' in r else 'iterations ' + ', '.join(f'{s:.2f}' for s in r['steps'])} "
              f"({time.perf_counter() - t:.0f} s)", flush=True)
    md = table(a, res); print(md)
    if a.out: Path(a.out).write_text(md, encoding='utf-8')

if __name__ == '__main__': main()
