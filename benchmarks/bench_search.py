#!/usr/bin/env python
"""Time and memory of a DARTS search step with `trustnas_nb.supernet` (and `trustnas_nb.mlo` when present).

At the DARTS search configuration (C=16, 8 cells, 4 intermediate nodes, batch 64, 3x32x32 inputs, 2 CPU threads)
it measures, each mode in its own subprocess (so that its peak resident memory is its own):

  fwd_bwd            one supernet forward + backward (loss on a batch)
  fwd_bwd_reference  the same with the reference formula `sum_o w_o * o(x)` in NCHW layout (the structure of the
                     official DARTS code), for an in-run comparison (--reference)
  first_order        one DARTS search iteration, first-order alpha gradient    (trustnas_nb.mlo.MLOProblem)
  finite_difference  one iteration, second-order alpha gradient by finite differences (DARTS 2nd order)
  exact              one iteration, second-order alpha gradient by exact autograd through the unrolled step

For every mode: median, min and max wall time of --repeats timed runs (after one warm-up run), the ratio of the
median to fwd_bwd's, and the peak RSS (resource.getrusage ru_maxrss) of the subprocess. Prints a table and writes
it to --out (default benchmarks/results.md).

Run it alone on the machine: timings are meaningless when other jobs share the CPU.

    python benchmarks/bench_search.py                 # the DARTS search configuration
    python benchmarks/bench_search.py --reference     # + the reference formula
    python benchmarks/bench_search.py --batch 8 --repeats 2 --out /tmp/r.md   # a quick check
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, subprocess, sys, time
from datetime import datetime, timezone
from pathlib import Path

MODES = ('fwd_bwd', 'fwd_bwd_reference', 'first_order', 'finite_difference', 'exact')
MLO_MODES = ('first_order', 'finite_difference', 'exact')

def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--repeats', type=int, default=5, help='timed runs per mode (median reported; default 5)')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--C', type=int, default=16, help='initial channels')
    p.add_argument('--layers', type=int, default=8, help='cells')
    p.add_argument('--nodes', type=int, default=4, help='intermediate nodes per cell')
    p.add_argument('--image', type=int, default=32, help='image side')
    p.add_argument('--threads', type=int, default=2, help='torch intra-op threads (default 2)')
    p.add_argument('--space', default='darts')
    p.add_argument('--pc-k', type=int, default=1, help='PC-DARTS partial-channel K (default 1: DARTS)')
    p.add_argument('--no-channels-last', action='store_true', help='run the fast path in NCHW layout')
    p.add_argument('--modes', default=None, help=f'comma-separated subset of {",".join(MODES)}')
    p.add_argument('--reference', action='store_true', help='also time the reference formula (fwd_bwd_reference)')
    p.add_argument('--out', default=str(Path(__file__).resolve().parent / 'results.md'), help='Markdown file to write ("" for none)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for k in ('repeats', 'batch', 'C', 'layers', 'nodes', 'image', 'threads', 'pc_k'):
        if getattr(a, k) < 1: p.error(f'--{k.replace("_", "-")} must be >= 1, got {getattr(a, k)}')
    return a

# ----------------------------------------------------------------------------------------------------- child side
def _peak_rss_bytes() -> int:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == 'darwin' else int(r) * 1024       # Linux reports KiB, macOS bytes

def run_child(a) -> dict:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    from trustnas_nb.supernet import build_supernet
    mode = a.child
    ref = mode == 'fwd_bwd_reference'
    net = build_supernet(a.space, C=a.C, layers=a.layers, n_nodes=a.nodes, pc_k=a.pc_k,
                         fast=not ref, channels_last=not (ref or a.no_channels_last))
    g = torch.Generator().manual_seed(a.seed)
    xt, yt = torch.randn(a.batch, 3, a.image, a.image, generator=g), torch.randint(0, 10, (a.batch,), generator=g)
    xv, yv = torch.randn(a.batch, 3, a.image, a.image, generator=g), torch.randint(0, 10, (a.batch,), generator=g)
    if mode in ('fwd_bwd', 'fwd_bwd_reference'):
        def step():
            net.zero_grad(set_to_none=True)
            net.loss(xt, yt).backward()
    else:
        from trustnas_nb.mlo import Level, MLOProblem
        def loss(P, batch):
            x, y = batch
            return F.cross_entropy(torch.func.functional_call(net, {**P['w'], **P['alpha']}, (x,)), y)
        w_opt = torch.optim.SGD(net.weights(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        a_opt = torch.optim.Adam(net.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        levels = [Level('w', dict(net.named_weights()), loss, w_opt, weight_decay_unroll=3e-4, grad_clip=5.0),
                  Level('alpha', dict(net.named_arch_parameters()), loss, a_opt)]
        prob = MLOProblem(levels, method=mode)
        def step(): prob.step({'w': (xt, yt), 'alpha': (xv, yv)})
    step()                                              # warm-up (allocator, kernels)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    return dict(mode=mode, times=times, peak_rss=_peak_rss_bytes(), threads=torch.get_num_threads(),
                torch=torch.__version__, params=sum(p.numel() for p in net.weights()))

# ---------------------------------------------------------------------------------------------------- parent side
def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def _have_mlo() -> bool:
    import importlib.util
    try: return importlib.util.find_spec('trustnas_nb.mlo') is not None
    except ModuleNotFoundError: return False

def run_mode(a, mode) -> dict:
    args = [sys.executable, os.path.abspath(__file__), '--child', mode, '--repeats', str(a.repeats), '--batch', str(a.batch),
            '--C', str(a.C), '--layers', str(a.layers), '--nodes', str(a.nodes), '--image', str(a.image),
            '--threads', str(a.threads), '--space', a.space, '--pc-k', str(a.pc_k), '--seed', str(a.seed), '--out', '']
    if a.no_channels_last: args.append('--no-channels-last')
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    lines = [l for l in r.stdout.splitlines() if l.startswith('{')]
    if r.returncode or not lines:
        return dict(mode=mode, error=(r.stderr.strip().splitlines() or [f'exit code {r.returncode}'])[-1])
    return json.loads(lines[-1])

def table(a, results) -> str:
    base = next((statistics.median(r['times']) for r in results if r.get('mode') == 'fwd_bwd' and 'times' in r), None)
    rows = ['| mode | median s | min s | max s | × fwd+bwd | peak RSS GB |', '|---|---|---|---|---|---|']
    for r in results:
        if 'error' in r: rows.append(f"| {r['mode']} | failed: {r['error']} | | | | |"); continue
        med = statistics.median(r['times'])
        ratio = f'{med / base:.2f}' if base else '—'
        rows.append(f"| {r['mode']} | {med:.3f} | {min(r['times']):.3f} | {max(r['times']):.3f} | {ratio} | {r['peak_rss'] / 2**30:.2f} |")
    return '\n'.join(rows)

def main(argv=None):
    a = parse(argv)
    if a.child:
        print(json.dumps(run_child(a))); return 0
    modes = a.modes.split(',') if a.modes else [m for m in MODES if m != 'fwd_bwd_reference' or a.reference]
    bad = [m for m in modes if m not in MODES]
    if bad: raise SystemExit(f'unknown mode(s) {bad}; expected some of {", ".join(MODES)}')
    if not _have_mlo():
        skipped = [m for m in modes if m in MLO_MODES]
        if skipped: print(f'trustnas_nb.mlo not found: skipping {", ".join(skipped)}')
        modes = [m for m in modes if m not in MLO_MODES]
    cfg = (f'space={a.space}, C={a.C}, layers={a.layers}, nodes={a.nodes}, batch={a.batch}, input=3x{a.image}x{a.image}, '
           f'pc_k={a.pc_k}, threads={a.threads}, layout={"NCHW" if a.no_channels_last else "channels_last"}, repeats={a.repeats}')
    print(cfg)
    t0, results = time.time(), []
    for m in modes:
        r = run_mode(a, m)
        results.append(r)
        msg = r.get('error') or f"median {statistics.median(r['times']):.3f} s, peak RSS {r['peak_rss'] / 2**30:.2f} GB"
        print(f'  {m:18s} {msg}', flush=True)
    tab = table(a, results)
    print(tab)
    if a.out:
        import torch
        try:
            from trustnas_nb.core import git_commit
            commit = git_commit(Path(__file__).resolve().parent)
        except Exception: commit = 'unknown'
        params = next((r['params'] for r in results if 'params' in r), None)
        md = ['# Search-step benchmark', '',
              'Produced by `benchmarks/bench_search.py`; each mode ran in its own process (peak RSS = that process\'s '
              '`ru_maxrss`, Python and torch included). Times are wall-clock seconds of one step, after one warm-up step.', '',
              f'Configuration: {cfg}' + (f'; supernet weights: {params:,}' if params else '') + '.', '',
              tab, '',
              f'<sub>torch {torch.__version__} · CPU: {_cpu_model()} ({os.cpu_count()} logical cores) · python '
              f'{platform.python_version()} · git {commit} · {datetime.now(timezone.utc).isoformat(timespec="seconds")} · '
              f'total {time.time() - t0:.0f} s</sub>', '']
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text('\n'.join(md))
        print(f'wrote {a.out}')
    return 0

if __name__ == '__main__':
    sys.exit(main())
