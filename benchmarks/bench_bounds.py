#!/usr/bin/env python
"""Cost and tightness of certified bounds (`trustnas_nb.bounds`): the CB objective during search, and certified radii.

A. "CB objective during search". At the DARTS search configuration (supernet C=16, 8 cells, 4 intermediate nodes,
   3x32x32 inputs, batch 64, 2 CPU threads) it times, each mode in its own subprocess:

     fwd_bwd              one forward + backward of the cross-entropy loss on the batch (train mode, grads w.r.t. all
                          parameters): the baseline
     cb_<method>_<sub>    certified_bounds(net, x[:sub], y[:sub], eps, 'linf', method) -> lb (sub, K), then the scalar
                          -sum_{j != y} lb[:, j] / sub and its .backward() (grads w.r.t. the weights and α), for method in
                          --methods (default ibp, crown-ibp) at every sub-batch of --subs (default 8,16,32,64), and
                          method crown at the sub-batches of --crown-subs (default 1)

   For every mode: median / min / max wall time of the step, the ratio of the median to fwd_bwd's, the time of the bound
   computation alone (before .backward()), the torch.export trace time (taken once, before the warm-up, and reported
   separately), the warm-up step's time, the peak RSS (resource.getrusage ru_maxrss) of the subprocess, and whether it
   meets the target (<= 5x fwd_bwd and <= 12 GB). Tightness, from the same run: the mean over the sub-batch of the
   worst-margin lower bound min_{j != y} lb[:, j] and the fraction certified (worst margin > 0) at --eps, the same at
   --eps-small (default 0.001; no_grad, not timed), and the exact clean margin (eps = 0) that every bound is below.
   The supernet is at initialisation (random inputs): its bounds are what they are.

B. "Certified radii of test inputs of the cpu-scale evaluation network". The evaluation network of the published
   genotype DARTS_V2 at the `cpu` preset size (PRESETS['cpu']['eval']: C=12, 5 cells, auxiliary head) on the embedded
   digits dataset (8x8, 1 channel; the recipe of `trustnas_nb.search.evaluate_genotype` at scale 'cpu') is trained once
   (seeded, a subprocess of its own, not timed as part of the comparison; its state_dict is saved to a temporary file
   that the radius modes load), then certified_radius on the first --n-radius (default 100) test inputs is timed for
   each method of --radius-methods (default crown-ibp, ibp, crown): median time (crown-ibp's target: <= 60 s),
   mean / median certified radius, and the mean radius relative to crown-ibp's on the same inputs. crown has its own
   timeout (--crown-timeout, default 900 s); a radius mode that times out is rerun on the first --crown-subset (10)
   inputs, with the same timeout, and says so. (crown costs about a minute per input of this network: 3 inputs took
   182 s on 1 thread of a busy 2-core VM, so on 100 inputs it is expected to time out.)

Every mode runs in its own process, with a timeout (--timeout; --crown-timeout for crown radii) and a memory guard
(--mem-limit-gb: the parent kills a child whose RSS exceeds it; the child's RLIMIT_DATA, set 25 % higher, is a
backstop against allocation spikes between the parent's checks); a mode that runs out of
either is reported as 'not run: timeout' / 'not run: memory' (with what it measured before that). Repeats are
reduced when the warm-up shows that --repeats would not fit in the timeout (the table says how many ran).

Prints the tables and writes them to --out (default benchmarks/results_bounds.md; with --quick, nothing unless
--out is given). The full run takes roughly 45-75 min (each part-A mode has a 300-s timeout and traces the
supernet once, ~20-60 s; the crown radii may take up to 2 x 900 s).

Run it alone on the machine: timings are meaningless when other jobs share the CPU (with 2 threads on a busy
2-core machine, OpenMP waits make small ops ~30x slower).

    python benchmarks/bench_bounds.py                                  # the full benchmark
    python benchmarks/bench_bounds.py --quick --out /tmp/bench_quick.md   # small sizes, 1 repeat: a check of the script
    python benchmarks/bench_bounds.py --parts A --modes 'fwd_bwd,cb_ibp_*'
"""
from __future__ import annotations
import argparse, fnmatch, json, os, platform, signal, statistics, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import _peak_rss_bytes, _cpu_model     # the same measurement as the search benchmark

HERE = Path(__file__).resolve().parent
TAG = '@@RESULT '
CB_TARGET_RATIO, CB_TARGET_GB, RADIUS_TARGET_S = 5.0, 12.0, 60.0

# The sizes of the full benchmark and of --quick. Only sizes differ: both run the same code.
FULL = dict(C=16, layers=8, nodes=4, image=32, batch=64, subs='8,16,32,64', crown_subs='1', repeats=5,
            eval_C=None, eval_layers=None, train_epochs=None, n_radius=100, crown_subset=10, radius_repeats=3,
            out=str(HERE / 'results_bounds.md'))          # eval_*/train_epochs None: PRESETS['cpu']['eval']
QUICK = dict(C=2, layers=3, nodes=4, image=8, batch=8, subs='2,8', crown_subs='1', repeats=1,
             eval_C=4, eval_layers=3, train_epochs=None, n_radius=10, crown_subset=3, radius_repeats=1, out='')

def _mem_total_gb() -> float:
    try: return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30
    except (ValueError, OSError, AttributeError): return 16.0

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='small sizes and 1 repeat (a check of the script; same code paths)')
    p.add_argument('--parts', default='AB', help='which parts to run: A, B or AB (default AB)')
    p.add_argument('--modes', default=None, help='comma-separated mode names or glob patterns to run (e.g. "fwd_bwd,cb_ibp_*,radius_*")')
    p.add_argument('--repeats', type=int, default=None, help='timed runs per mode of part A (median reported; default 5, quick 1)')
    p.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default 2)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--timeout', type=float, default=300, help='seconds per mode (default 300)')
    p.add_argument('--mem-limit-gb', type=float, default=round(0.8 * _mem_total_gb(), 1),
                   help='memory guard per mode, GB (default 80%% of physical memory)')
    p.add_argument('--out', default=None, help='Markdown file to write ("" for none; default benchmarks/results_bounds.md, quick: none)')
    g = p.add_argument_group('A: CB objective during search')
    g.add_argument('--space', default='darts')
    g.add_argument('--C', type=int, default=None, help='supernet initial channels (16; quick 2)')
    g.add_argument('--layers', type=int, default=None, help='supernet cells (8; quick 3)')
    g.add_argument('--nodes', type=int, default=None, help='intermediate nodes per cell (4)')
    g.add_argument('--image', type=int, default=None, help='image side (32; quick 8)')
    g.add_argument('--batch', type=int, default=None, help='batch of fwd_bwd (64; quick 8)')
    g.add_argument('--methods', default='ibp,crown-ibp', help='bound methods timed at every sub-batch (default ibp,crown-ibp)')
    g.add_argument('--subs', default=None, help='sub-batches of the bounds (8,16,32,64; quick 2,8)')
    g.add_argument('--crown-subs', default=None, help='sub-batches of method crown ("" for none; default 1)')
    g.add_argument('--eps', type=float, default=0.03, help="l_inf radius of the CB objective (default 0.03, the thesis' initial eps)")
    g.add_argument('--eps-small', type=float, default=0.001, help='a second, smaller eps for the tightness table (0 for none)')
    g = p.add_argument_group('B: certified radii of the cpu-scale evaluation network')
    g.add_argument('--genotype', default='DARTS_V2')
    g.add_argument('--eval-C', type=int, default=None, help="evaluation network's C (PRESETS['cpu']['eval']: 12; quick 4)")
    g.add_argument('--eval-layers', type=int, default=None, help="evaluation network's cells (preset: 5; quick 3)")
    g.add_argument('--train-epochs', type=int, default=None, help="training epochs (PRESETS['cpu']['eval']: 5)")
    g.add_argument('--n-radius', type=int, default=None, help='test inputs whose radius is computed (100; quick 10)')
    g.add_argument('--radius-methods', default='crown-ibp,ibp,crown', help='methods of the radius modes (default crown-ibp,ibp,crown)')
    g.add_argument('--radius-repeats', type=int, default=None, help='timed radius runs (median; 3, quick 1; crown always 1)')
    g.add_argument('--crown-timeout', type=float, default=900, help='seconds for a crown radius mode and for its rerun on a subset (default 900)')
    g.add_argument('--crown-subset', type=int, default=None, help='inputs of the rerun of a radius mode that timed out (10; quick 3)')
    g.add_argument('--rtol', type=float, default=1e-3, help='relative precision of the radii (default 1e-3)')
    g.add_argument('--eps0', type=float, default=1e-3, help='first eps of the radius search (default 1e-3)')
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    p.add_argument('--cfg', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child: return a
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None: setattr(a, k, v)
    from trustnas_nb.core import PRESETS
    E = PRESETS['cpu']['eval']
    a.eval_C, a.eval_layers, a.train_epochs = a.eval_C or E['C'], a.eval_layers or E['layers'], a.train_epochs or E['epochs']
    a.parts = a.parts.upper()
    if not a.parts or set(a.parts) - set('AB'): p.error(f'--parts must be A, B or AB, got {a.parts!r}')
    for k in ('repeats', 'threads', 'C', 'layers', 'nodes', 'image', 'batch', 'eval_C', 'eval_layers', 'train_epochs',
              'n_radius', 'radius_repeats', 'crown_subset'):
        if getattr(a, k) < 1: p.error(f'--{k.replace("_", "-")} must be >= 1, got {getattr(a, k)}')
    ints = lambda s, n: [int(v) for v in s.split(',') if v.strip()] if s.strip() else []
    try: a.subs, a.crown_subs = ints(a.subs, 'subs'), ints(a.crown_subs, 'crown-subs')
    except ValueError: p.error('--subs and --crown-subs are comma-separated integers')
    bad = [s for s in a.subs + a.crown_subs if not 1 <= s <= a.batch]
    if bad: p.error(f'sub-batches must be in 1..--batch ({a.batch}), got {bad}')
    from trustnas_nb.bounds import METHODS
    a.methods = [m.strip() for m in a.methods.split(',') if m.strip()]
    a.radius_methods = [m.strip() for m in a.radius_methods.split(',') if m.strip()]
    bad = [m for m in a.methods + a.radius_methods if m not in METHODS]
    if bad: p.error(f'unknown method(s) {bad}; expected some of {", ".join(METHODS)}')
    if not a.eps >= 0 or not a.eps_small >= 0: p.error('--eps and --eps-small must be >= 0')
    if a.timeout <= 0 or a.crown_timeout <= 0 or a.mem_limit_gb <= 0: p.error('timeouts and --mem-limit-gb must be > 0')
    return a

# ----------------------------------------------------------------------------------------------------- child side
_LAST: dict = {}

def _emit(res):
    "Print the cumulative result so far (the parent keeps the last one, also from a child it had to stop)."
    global _LAST
    res['peak_rss'] = _peak_rss_bytes()
    _LAST = res
    print(TAG + json.dumps(res), flush=True)

def _worst(lb, onehot):
    "Per input: the worst margin lower bound min_{j != y} lb[:, j]."
    return lb.masked_fill(onehot, float('inf')).min(1).values

def child_search(c, mode, t_start):
    "Part A: fwd_bwd or cb_<method>_<sub> on the supernet."
    import torch
    import torch.nn.functional as F
    from trustnas_nb.supernet import build_supernet
    net = build_supernet(c['space'], C=c['C'], layers=c['layers'], num_classes=10, n_nodes=c['nodes'])
    net.train()                                          # as the search uses it (the bounds switch to eval mode themselves)
    g = torch.Generator().manual_seed(c['seed'])
    x = torch.randn(c['batch'], 3, c['image'], c['image'], generator=g)
    y = torch.randint(0, 10, (c['batch'],), generator=g)
    res = dict(mode=mode, params=sum(p.numel() for p in net.weights()), threads=torch.get_num_threads(), torch=torch.__version__)
    out = {}
    if mode == 'fwd_bwd':
        def step():
            net.zero_grad(set_to_none=True)
            net.loss(x, y).backward()
    else:
        from trustnas_nb import bounds
        _, method, sub = mode.split('_', 2)
        sub = int(sub)
        xs, ys = x[:sub], y[:sub]
        onehot = F.one_hot(ys, 10).bool()
        res.update(method=method, sub=sub, eps=c['eps'])
        t0 = time.perf_counter()
        bounds.trace(net, tuple(xs.shape[1:]), xs.dtype, xs.device)      # once per process; certified_bounds reuses it
        res['trace_s'] = time.perf_counter() - t0
        _emit(res)
        def step():
            net.zero_grad(set_to_none=True)
            t = time.perf_counter()
            lb = bounds.certified_bounds(net, xs, ys, c['eps'], 'linf', method)
            out['bound_s'] = time.perf_counter() - t
            (-lb.masked_fill(onehot, 0).sum() / sub).backward()
            out['lb'] = lb.detach()
    def record():                                        # gradients and tightness of the last step
        ga = [p.grad for p in net.arch_parameters()]
        gw = [p.grad for p in net.weights()]
        res['grad_alpha_norm'] = float(sum(float(t.norm()) ** 2 for t in ga if t is not None) ** 0.5)
        res['grad_alpha_finite'] = all(t is not None and bool(torch.isfinite(t).all()) for t in ga)
        res['weights_with_grad'] = f'{sum(t is not None for t in gw)}/{len(gw)}'
        if 'lb' in out:
            w = _worst(out['lb'], onehot)
            res.setdefault('tight', {})[str(c['eps'])] = dict(mean_worst=float(w.mean()), certified=float((w > 0).float().mean()))
    t0 = time.perf_counter(); step(); res['warmup_s'] = time.perf_counter() - t0
    record()                                             # kept if the timed runs do not finish
    _emit(res)
    left = c['deadline'] - (time.perf_counter() - t_start)
    n = max(1, min(c['repeats'], int(0.85 * left / max(res['warmup_s'], 1e-6))))
    res.update(times=[], repeats_planned=c['repeats'])
    if 'lb' in out: res['bound_times'] = []
    for _ in range(n):
        t0 = time.perf_counter(); step(); res['times'].append(time.perf_counter() - t0)
        if 'lb' in out: res['bound_times'].append(out['bound_s'])
        _emit(res)
    record()
    if 'lb' not in out:
        _emit(res); return res
    with torch.no_grad():                                # the exact margins (eps = 0: every bound is below them)
        res['clean_margin'] = float(_worst(bounds.certified_bounds(net, xs, ys, 0.0, 'linf', 'ibp'), onehot).mean())
    _emit(res)
    if c['eps_small'] > 0:                               # no_grad: about the cost of the bounds alone
        if c['deadline'] - (time.perf_counter() - t_start) > 1.5 * statistics.median(res['bound_times']):
            with torch.no_grad():
                w = _worst(bounds.certified_bounds(net, xs, ys, c['eps_small'], 'linf', method), onehot)
            res['tight'][str(c['eps_small'])] = dict(mean_worst=float(w.mean()), certified=float((w > 0).float().mean()))
        else: res['tight'][str(c['eps_small'])] = 'skipped: timeout'
        _emit(res)
    return res

def _eval_setup(c):
    "The evaluation network of part B and the digits data, as trustnas_nb.search.evaluate_genotype builds them at scale 'cpu'."
    import torch
    from trustnas_nb.core import PRESETS
    from trustnas_nb.datasets import get_dataset
    from trustnas_nb.evalnet import build_network
    from trustnas_nb.genotypes import get_genotype
    E, S = PRESETS['cpu']['eval'], PRESETS['cpu']['search']
    tr = get_dataset(S['dataset'], 'train', seed=c['seed'], image_size=S['image_size'])
    te = get_dataset(S['dataset'], 'test', seed=c['seed'], image_size=S['image_size'])
    data = (tr.x[:E['n_train']], tr.y[:E['n_train']], te.x[:S['n_test']], te.y[:S['n_test']])
    net = build_network(get_genotype(c['genotype']), style='cifar', C=c['eval_C'], layers=c['eval_layers'], num_classes=10,
                        in_channels=tr.x.shape[1], auxiliary=E['auxiliary'])
    return net, data, E, S

def child_train(c, mode, t_start):
    "Part B, step 1: train the evaluation network (the recipe of evaluate_genotype at scale 'cpu'), save its state_dict."
    import torch
    from trustnas_nb.core import seed_everything, derive_seed
    from trustnas_nb.search import make_loader
    from trustnas_nb.evalnet import train_network, evaluate, count_parameters
    seed_everything(derive_seed(c['seed'], 'eval'))
    net, (xt, yt, xs, ys), E, S = _eval_setup(c)
    tr = make_loader(xt, yt, E['batch_size'], derive_seed(c['seed'], 'eval-data'))
    te = make_loader(xs, ys, 256, 0, shuffle=False)
    t0 = time.perf_counter()
    hist = train_network(net, tr, None, epochs=c['train_epochs'], lr=E['lr'], grad_clip=E['grad_clip'],
                         auxiliary_weight=E['auxiliary_weight'], drop_path_prob=E['drop_path'], cutout=E['cutout'],
                         augment=S['dataset'] != 'digits', seed=derive_seed(c['seed'], 'eval-train'), progress=False)
    train_s = time.perf_counter() - t0
    _, acc = evaluate(net, te)
    torch.save(net.state_dict(), c['state'])
    res = dict(mode=mode, train_s=train_s, test_acc=100 * acc, n_test=len(ys), n_train=len(yt),
               train_acc=100 * float(hist.iloc[-1]['train_acc']), params=count_parameters(net),
               in_shape=list(xs.shape[1:]), threads=torch.get_num_threads(), torch=torch.__version__)
    _emit(res)
    return res

def child_radius(c, mode, t_start):
    "Part B, step 2: certified_radius of the first n test inputs with one method."
    import torch
    from trustnas_nb import bounds
    method = mode.split('_', 1)[1]
    net, (_, _, xs, ys), _, _ = _eval_setup(c)
    net.load_state_dict(torch.load(c['state'], weights_only=True))
    net.eval()
    n = c['n_inputs']
    x, y = xs[:n], ys[:n]
    res = dict(mode=mode, method=method, n=len(y), threads=torch.get_num_threads(), torch=torch.__version__)
    t0 = time.perf_counter()
    bounds.trace(net, tuple(x.shape[1:]), x.dtype, x.device)
    res['trace_s'] = time.perf_counter() - t0
    _emit(res)
    t0 = time.perf_counter()
    with torch.no_grad(): bounds.certified_bounds(net, x[:2], y[:2], c['eps0'], 'linf', method)     # warm-up (kernels)
    res['warmup_s'] = time.perf_counter() - t0
    with torch.no_grad(): res['correct'] = (net(x).argmax(1) == y).tolist()
    _emit(res)
    res['times'] = []
    reps = 1 if method == 'crown' else c['radius_repeats']
    for _ in range(reps):
        t0 = time.perf_counter()
        r = bounds.certified_radius(net, x, y, 'linf', method, rtol=c['rtol'], eps0=c['eps0'])
        res['times'].append(time.perf_counter() - t0)
        res['radii'] = [float(v) for v in r]
        _emit(res)
        left = c['deadline'] - (time.perf_counter() - t_start)
        if left < 1.2 * res['times'][-1]: break
    return res

def run_child(a):
    t_start = time.perf_counter()
    c = json.loads(a.cfg)
    if c.get('mem_limit_gb'):                            # a backstop: the parent stops the child at mem_limit_gb of RSS;
        import resource                                  # RLIMIT_DATA also counts reserved, untouched memory
        lim = int(max(1.25 * c['mem_limit_gb'], c['mem_limit_gb'] + 2) * 2**30)
        try: resource.setrlimit(resource.RLIMIT_DATA, (lim, lim))
        except (ValueError, OSError): pass
    import torch
    torch.set_num_threads(c['threads'])
    torch.manual_seed(c['seed'])
    mode = a.child
    fn = child_train if mode == 'train' else child_radius if mode.startswith('radius_') else child_search
    try: fn(c, mode, t_start)
    except (MemoryError, RuntimeError) as e:
        msg = f'{type(e).__name__}: {e}'
        if isinstance(e, MemoryError) or any(s in msg for s in ('allocate memory', 'bad_alloc', 'out of memory')):
            detail = 'an allocation failed (RLIMIT_DATA)' if 'allocate memory' in msg else msg.splitlines()[0][:120]
            print(TAG + json.dumps(dict(_LAST or dict(mode=mode), fatal='memory', detail=detail,
                                        peak_rss=_peak_rss_bytes())), flush=True)
            return 3
        raise
    return 0

# ---------------------------------------------------------------------------------------------------- parent side
def _rss_bytes(pid) -> int:
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'): return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError): pass
    return 0

def _child_cfg(a, **extra) -> dict:
    keys = ('threads', 'seed', 'space', 'C', 'layers', 'nodes', 'image', 'batch', 'eps', 'eps_small', 'repeats', 'genotype',
            'eval_C', 'eval_layers', 'train_epochs', 'radius_repeats', 'rtol', 'eps0', 'mem_limit_gb')
    return {**{k: getattr(a, k) for k in keys}, **extra}

def run_mode(a, mode, timeout, **extra) -> dict:
    """Run `mode` in a subprocess with a timeout and a memory guard. Returns the child's last result, with
    status 'ok', 'timeout', 'memory' or 'error'."""
    cfg = _child_cfg(a, deadline=timeout, **extra)
    args = [sys.executable, os.path.abspath(__file__), '--child', mode, '--cfg', json.dumps(cfg)]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    limit = a.mem_limit_gb * 2**30
    with tempfile.TemporaryFile('w+') as fo, tempfile.TemporaryFile('w+') as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=fo, stderr=fe, text=True, env=env, start_new_session=True)
        status, max_rss = None, 0
        while proc.poll() is None:
            rss = _rss_bytes(proc.pid); max_rss = max(max_rss, rss)
            if rss > limit: status = 'memory'
            elif time.perf_counter() - t0 > timeout: status = 'timeout'
            if status:
                try: os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError: pass
                proc.wait(); break
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        fo.seek(0); fe.seek(0)
        out, err = fo.read(), fe.read()
    lines = [l[len(TAG):] for l in out.splitlines() if l.startswith(TAG)]
    r = json.loads(lines[-1]) if lines else dict(mode=mode)
    r['wall_s'] = wall
    if r.get('fatal') == 'memory': status = 'memory'
    if status is None and proc.returncode == -signal.SIGKILL:
        status, r['detail'] = 'memory', 'killed by the system (out of memory?)'
    if status is None:
        status = 'ok' if proc.returncode == 0 and lines else 'error'
    if status == 'error':
        tail = [l for l in err.strip().splitlines() if l.strip()]
        r['error'] = tail[-1][:300] if tail else f'exit code {proc.returncode}'
    if status in ('memory', 'timeout'):
        r['peak_rss'] = max(r.get('peak_rss', 0), max_rss)
    r['status'] = status
    return r

def _note(r, a, timeout) -> str:
    "What happened to a mode that did not finish normally."
    if r['status'] == 'ok': return ''
    if r['status'] == 'error': return f"failed: {r.get('error', '?')}"
    what = (f'timeout ({timeout:.0f} s)' if r['status'] == 'timeout'
            else f"memory (RSS > {a.mem_limit_gb:.1f} GB{': ' + r['detail'] if r.get('detail') else ''})")
    done = (f"{len(r['times'])} timed run(s) done" if r.get('times') else
            'in the warm-up step' if 'trace_s' in r and 'warmup_s' not in r else
            'in the first timed run' if 'warmup_s' in r else 'before the trace finished')
    return f'not run: {what}, {done}'

def _fmt(v, nd=3):
    if v is None: return '—'
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5): return f'{v:.3g}'
        return f'{v:.{nd}f}'
    return str(v)

def _gb(r): return f"{r['peak_rss'] / 2**30:.2f}" if r.get('peak_rss') else '—'

def _method_sub(r, a):
    "(method, sub-batch) of a part-A mode, from its name."
    if not r['mode'].startswith('cb_'): return '—', a.batch
    _, m, s = r['mode'].split('_', 2)
    return m, int(s)

def table_search(a, results) -> tuple[str, str]:
    base = next((statistics.median(r['times']) for r in results if r['mode'] == 'fwd_bwd' and r.get('times')), None)
    rows = ['| mode | method | sub-batch | median s | min s | max s | × fwd+bwd | bounds only s | trace s | warm-up s | runs | peak RSS GB | ≤5× and ≤12 GB | note |',
            '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        t = r.get('times') or []
        med = statistics.median(t) if t else None
        ratio = med / base if (med and base) else None
        gb = r['peak_rss'] / 2**30 if r.get('peak_rss') else None
        target = ('—' if r['mode'] == 'fwd_bwd' or ratio is None or gb is None else '(quick)' if a.quick else
                  'yes' if ratio <= CB_TARGET_RATIO and gb <= CB_TARGET_GB else 'no')
        bt = statistics.median(r['bound_times']) if r.get('bound_times') else None
        rows.append(f"| {r['mode']} | {' | '.join(map(str, _method_sub(r, a)))} | {_fmt(med)} | {_fmt(min(t) if t else None)} | "
                    f"{_fmt(max(t) if t else None)} | {_fmt(ratio, 2)} | {_fmt(bt)} | {_fmt(r.get('trace_s'), 1)} | "
                    f"{_fmt(r.get('warmup_s'), 2)} | {len(t)}/{a.repeats} | {_gb(r)} | {target} | {_note(r, a, a.timeout)} |")
    epss = [str(a.eps)] + ([str(a.eps_small)] if a.eps_small > 0 else [])
    head = ['| method | sub-batch | ' + ' | '.join(f'mean worst-margin lb @ ε={e} | certified @ ε={e}' for e in epss) +
            ' | clean margin (ε=0, exact) | ‖∂L/∂α‖ |', '|---|---|' + '---|---|' * len(epss) + '---|---|']
    for r in results:
        if r['mode'] == 'fwd_bwd': continue
        tg = r.get('tight', {})
        cells = []
        for e in epss:
            d = tg.get(e)
            cells += ([_fmt(d['mean_worst']), f"{100 * d['certified']:.0f} %"] if isinstance(d, dict) else
                      [d, '—'] if d else ['—', '—'])
        ga = r.get('grad_alpha_norm')
        ga = '—' if ga is None else (_fmt(ga) + ('' if r.get('grad_alpha_finite', True) else ' (non-finite!)'))
        head.append(f"| {' | '.join(map(str, _method_sub(r, a)))} | " + ' | '.join(cells) +
                    f" | {_fmt(r.get('clean_margin'))} | {ga} |")
    return '\n'.join(rows), '\n'.join(head)

def table_radius(a, train, results) -> str:
    by = {(r['method'], r.get('n')): r for r in results if r.get('radii')}
    ref_t = next((statistics.median(r['times']) for r in results if r.get('method') == 'crown-ibp' and r.get('times')
                  and r.get('n') == a.n_radius), None)
    rows = ['| mode | inputs | median s | runs | × crown-ibp time | mean radius | mean radius (correct inputs) | median radius | '
            'mean radius / crown-ibp\'s (same inputs) | trace s | warm-up s | peak RSS GB | note |',
            '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        t = r.get('times') or []
        med = statistics.median(t) if t else None
        rad = r.get('radii')
        n = r.get('n', '—')
        mean = statistics.fmean(rad) if rad else None
        corr = [v for v, ok in zip(rad or [], r.get('correct') or []) if ok]
        mcorr = statistics.fmean(corr) if corr else None
        rel = None
        ref = next((q for q in results if q.get('method') == 'crown-ibp' and q.get('radii')), None)
        if rad and ref and len(ref['radii']) >= len(rad):
            m_ref = statistics.fmean(ref['radii'][:len(rad)])
            rel = mean / m_ref if m_ref > 0 else None
        note = _note(r, a, a.crown_timeout if r.get('method') == 'crown' else a.timeout)
        if r.get('subset_of'): note = (note + '; ' if note else '') + f"first {n} inputs only: {r['subset_of']}"
        if r.get('method') == 'crown-ibp' and med is not None and n == a.n_radius and not a.quick:
            note = (note + '; ' if note else '') + f"target ≤ {RADIUS_TARGET_S:.0f} s: {'met' if med <= RADIUS_TARGET_S else 'missed'}"
        x_ref = med / ref_t * (a.n_radius / n) if (med and ref_t and isinstance(n, int)) else None
        rows.append(f"| {r['mode']} | {n} | {_fmt(med, 2)} | {len(t)} | {_fmt(x_ref, 2)}{'' if n == a.n_radius or x_ref is None else ' (per input)'} | "
                    f"{_fmt(mean)} | {_fmt(mcorr)} | {_fmt(statistics.median(rad) if rad else None)} | {_fmt(rel, 3)} | "
                    f"{_fmt(r.get('trace_s'), 1)} | {_fmt(r.get('warmup_s'), 2)} | {_gb(r)} | {note} |")
    return '\n'.join(rows)

def _selected(a, mode) -> bool:
    if not a.modes: return True
    return any(fnmatch.fnmatchcase(mode, pat.strip()) for pat in a.modes.split(',') if pat.strip())

def main(argv=None):
    a = parse(argv)
    if a.child: return run_child(a)
    if a.out is None: a.out = ''
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None
    t_all = time.time()
    print(f"bench_bounds{' --quick' if a.quick else ''}: threads={a.threads}, timeout={a.timeout:.0f} s "
          f"(crown radius {a.crown_timeout:.0f} s), memory guard {a.mem_limit_gb:.1f} GB")
    if load is not None and load > 0.5:
        print(f'warning: load average {load:.2f}: the machine is not idle, timings will be off')
    md = []
    cfgA = (f'space={a.space}, C={a.C}, layers={a.layers}, nodes={a.nodes}, batch={a.batch} (fwd_bwd), input=3x{a.image}x{a.image}, '
            f'ε={a.eps} (ℓ∞){f", ε_small={a.eps_small}" if a.eps_small > 0 else ""}, methods={",".join(a.methods)} at sub-batches '
            f'{",".join(map(str, a.subs))}, crown at {",".join(map(str, a.crown_subs)) or "none"}, threads={a.threads}, repeats={a.repeats}')
    if 'A' in a.parts:
        modes = ['fwd_bwd'] + [f'cb_{m}_{s}' for m in a.methods if m != 'crown' for s in a.subs] + \
                [f'cb_crown_{s}' for s in (a.crown_subs + (a.subs if 'crown' in a.methods else []))]
        modes = list(dict.fromkeys(m for m in modes if _selected(a, m)))
        print(f'A. CB objective during search: {cfgA}')
        results = []
        for m in modes:
            print(f'  {m:22s} ...', end='', flush=True)
            r = run_mode(a, m, a.timeout)
            results.append(r)
            t = r.get('times')
            msg = (f"median {statistics.median(t):.3f} s" if t else '') + (f", trace {r['trace_s']:.1f} s" if 'trace_s' in r else '') + \
                  (f", peak RSS {r['peak_rss'] / 2**30:.2f} GB" if r.get('peak_rss') else '')
            print(f' {msg}' + (f'  [{_note(r, a, a.timeout)}]' if r['status'] != 'ok' else '') + f'  ({r["wall_s"]:.0f} s)', flush=True)
        tA, tT = table_search(a, results)
        print(tA); print(); print(tT); print()
        params = next((r['params'] for r in results if 'params' in r), None)
        md += ['## A. CB objective during search', '',
               f'Configuration: {cfgA}' + (f'; supernet weights: {params:,}' if params else '') + '.', '',
               'Times are wall-clock seconds of one step after a warm-up step: `fwd_bwd` = forward + backward of the '
               'cross-entropy loss on the batch (train mode); `cb_<method>_<sub>` = `certified_bounds` on the first `sub` '
               'inputs + `.backward()` of −Σ_{j≠y} lb_j / sub (gradients w.r.t. weights and α). "bounds only" is the '
               '`certified_bounds` call alone; "trace" is the one-off `torch.export` trace (not in the step times). '
               f'Target: ≤ {CB_TARGET_RATIO:.0f}× fwd+bwd and ≤ {CB_TARGET_GB:.0f} GB peak RSS.', '', tA, '',
               f'Tightness of the same bounds (supernet at initialisation, random N(0, 1) inputs): mean over the sub-batch of '
               'the worst-margin lower bound min_{j≠y} lb_j, the fraction of the sub-batch it certifies, and the exact '
               'clean margin (ε = 0) that bounds approach as they tighten. The smaller ε is computed after the timed runs '
               '(no_grad, not timed).', '', tT, '']
    if 'B' in a.parts and (_selected(a, 'train') or any(_selected(a, f'radius_{m}') for m in a.radius_methods)):
        from trustnas_nb.core import PRESETS
        E = PRESETS['cpu']['eval']
        cfgB = (f"genotype {a.genotype}, evaluation network C={a.eval_C}, {a.eval_layers} cells (PRESETS['cpu']['eval']: "
                f"C={E['C']}, {E['layers']} cells), digits 8x8, trained {a.train_epochs} epoch(s) with the cpu-scale recipe "
                f"(batch {E['batch_size']}, lr {E['lr']}, drop-path {E['drop_path']}, cutout {E['cutout']}, auxiliary head); "
                f"radii (ℓ∞, rtol={a.rtol}, eps0={a.eps0}) of the first {a.n_radius} test inputs; threads={a.threads}, "
                f"radius runs={a.radius_repeats} (crown 1)")
        print(f'B. Certified radii: {cfgB}')
        rmodes = [f'radius_{m}' for m in a.radius_methods if _selected(a, f'radius_{m}')]
        train, results = None, []
        with tempfile.TemporaryDirectory(prefix='bench_bounds_') as tmp:
            state = str(Path(tmp) / 'evalnet_state.pt')
            print('  train (not timed)      ...', end='', flush=True)
            train = run_mode(a, 'train', max(a.timeout, 600), state=state)
            if train['status'] == 'ok':
                print(f" test accuracy {train['test_acc']:.1f} % ({train['n_test']} inputs), {train['train_s']:.1f} s", flush=True)
            else: print(f"  [{_note(train, a, max(a.timeout, 600))}]", flush=True)
            for m in (rmodes if train['status'] == 'ok' else []):
                to = a.crown_timeout if m == 'radius_crown' else a.timeout
                print(f'  {m:22s} ...', end='', flush=True)
                r = run_mode(a, m, to, state=state, n_inputs=a.n_radius)
                if r['status'] != 'ok' and r['status'] != 'error' and a.crown_subset < a.n_radius:
                    print(f' [{_note(r, a, to)}] -> rerun on {a.crown_subset} inputs ...', end='', flush=True)
                    why = _note(r, a, to)
                    results.append(r)
                    r = run_mode(a, m, to, state=state, n_inputs=a.crown_subset)
                    r['subset_of'] = f'{a.n_radius} inputs {why.replace("not run: ", "ran out of ")}'
                results.append(r)
                t = r.get('times')
                msg = (f"median {statistics.median(t):.2f} s" if t else '') + \
                      (f", mean radius {statistics.fmean(r['radii']):.3g}" if r.get('radii') else '')
                print(f' {msg}' + (f'  [{_note(r, a, to)}]' if r['status'] != 'ok' else '') + f'  ({r["wall_s"]:.0f} s)', flush=True)
        tB = table_radius(a, train, results)
        print(tB); print()
        md += ['## B. Certified radii of test inputs of the cpu-scale evaluation network', '', f'Configuration: {cfgB}.', '']
        if train is not None and train['status'] == 'ok':
            md += [f"Trained network: {train['params']:,} weights (auxiliary head excluded), test accuracy "
                   f"**{train['test_acc']:.1f} %** on {train['n_test']} digits test inputs (train accuracy of the last epoch, with drop-path and cutout, "
                   f"{train['train_acc']:.1f} %); training took {train['train_s']:.1f} s (a separate step, not timed below).", '']
        elif train is not None:
            md += [f"Training failed: {_note(train, a, max(a.timeout, 600))}.", '']
        md += ['Times are wall-clock seconds of `certified_radius` on all the inputs at once (after a trace and a warm-up '
               '`certified_bounds` call, reported separately); radius 0 for a misclassified input. '
               f'crown-ibp\'s target: ≤ {RADIUS_TARGET_S:.0f} s for 100 inputs of the cpu-size network on 2 threads.', '', tB, '']
    if a.out:
        import torch
        try:
            from trustnas_nb.core import git_commit
            commit = git_commit(HERE)
        except Exception: commit = 'unknown'
        doc = ['# Certified-bounds benchmark', '',
               'Produced by `benchmarks/bench_bounds.py`' + (' --quick' if a.quick else '') + '; each mode ran in its own process '
               '(peak RSS = that process\'s `ru_maxrss`, Python and torch included).', ''] + \
              (['**--quick: small sizes, 1 run; a check of the script, not the measurement the targets refer to.**', '']
               if a.quick else []) + md + \
              [f'<sub>torch {torch.__version__} · CPU: {_cpu_model()} ({os.cpu_count()} logical cores) · python '
               f'{platform.python_version()} · git {commit} · load average at start {_fmt(load, 2)} · '
               f'{datetime.now(timezone.utc).isoformat(timespec="seconds")} · total {time.time() - t_all:.0f} s</sub>', '']
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text('\n'.join(doc))
        print(f'wrote {a.out}')
    return 0

if __name__ == '__main__':
    sys.exit(main())
