#!/usr/bin/env python
"""How many NAS-Bench-201 architectures the robustness dataset (seed 002, `trustnas_nb.robbench`) trains and attacks
per minute, so that a user can plan the `paper`-scale run (all 6,466 unique cells).

Each architecture of a stratified sample (`nb201.sample_archs`) goes through `build_robustness_dataset` on its own,
with the data built once: training with the `robbench` recipe of the chosen scale, then the clean, FGSM, PGD, APGD
and Square evaluations at the preset's ε grid and the corruptions. Reported: wall seconds per architecture, its
CPU-seconds split into training and evaluation (the table's own `train_s` / `eval_s`), architectures per minute,
peak RSS, and the time the whole unique space would take at this scale and this speed. On a GPU (`--device cuda`,
when one is there) the same script gives the GPU rate.

Run it alone on the machine (other jobs make timings meaningless):

    python benchmarks/bench_robbench.py                       # cpu scale, 6 cells, 2 threads -> benchmarks/results_robbench.md
    python benchmarks/bench_robbench.py --scale ci --n 2 --out /tmp/r.md   # a quick check
"""
from __future__ import annotations
import argparse, platform, sys, time
from datetime import datetime, timezone
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import _peak_rss_bytes, _cpu_model

HERE = Path(__file__).resolve().parent

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--scale', default='cpu'); p.add_argument('--n', type=int, default=6)
    p.add_argument('--threads', type=int, default=2); p.add_argument('--device', default='cpu')
    p.add_argument('--seed', type=int, default=0); p.add_argument('--out', default=str(HERE/'results_robbench.md'))
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(a.threads)
    from trustnas_nb.core import preset
    from trustnas_nb.nb201 import sample_archs, unique_archs
    from trustnas_nb.robbench import build_robustness_dataset, robustness_data
    cfg = preset(a.scale, 'robbench')
    t = time.perf_counter()
    data = robustness_data(cfg['dataset'], cfg['image_size'], cfg['n_train'], cfg['n_test'], a.seed)
    data_s = time.perf_counter() - t
    rows = []
    for arch in sample_archs(a.n, seed=a.seed):
        t = time.perf_counter()
        df = build_robustness_dataset([arch], a.scale, a.seed, data=data, device=a.device)
        r = df.iloc[0]
        rows.append(dict(arch=arch, wall=time.perf_counter() - t, train_cpu=float(r['train_s']), eval_cpu=float(r['eval_s']),
                         clean=float(r['clean_acc']), params=int(r['params'])))
        print(f"{arch}: {rows[-1]['wall']:.1f} s wall (train {rows[-1]['train_cpu']:.1f} + eval {rows[-1]['eval_cpu']:.1f} CPU-s)", flush=True)
    wall = sum(r['wall'] for r in rows) / len(rows)
    tr, ev = (sum(r[k] for r in rows) / len(rows) for k in ('train_cpu', 'eval_cpu'))
    n_space = len(unique_archs())
    attacks = ', '.join(f"{k} {list(cfg['eps'][k])}" for k in cfg['attacks'])
    lines = ['# Robustness dataset: architectures trained and attacked per minute', '',
             f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} · {_cpu_model()} · {a.threads} torch thread(s) · "
             f"device {a.device} · torch {torch.__version__} · python {platform.python_version()}", '',
             f"Scale `{a.scale}` (`robbench` preset): {cfg['dataset']} {cfg['image_size']}×{cfg['image_size']}, {cfg['n_train']} training "
             f"images, network C={cfg.get('C')}, N={cfg.get('N')}, {cfg.get('epochs')} epoch(s); {cfg['n_attack']} attacked images; attacks "
             f"(ε·255): {attacks}; {len(cfg['corruptions'])} corruption(s). Data built once: {data_s:.1f} s.", '',
             '| architecture | params | clean acc | wall s | train CPU-s | eval CPU-s |', '|---|---|---|---|---|---|',
             *[f"| `{r['arch']}` | {r['params']} | {r['clean']:.3f} | {r['wall']:.1f} | {r['train_cpu']:.1f} | {r['eval_cpu']:.1f} |" for r in rows],
             '', f"**{60 / wall:.2f} architectures per minute** ({wall:.1f} s each: training {tr:.1f} CPU-s, attacks and corruptions "
             f"{ev:.1f} CPU-s); peak RSS {_peak_rss_bytes() / 2**20:.0f} MiB. All {n_space} unique cells at this scale and speed: "
             f"{n_space * wall / 3600:.1f} h.", '',
             'At `paper` scale (C=16, N=5 on 32×32 CIFAR-10, the full ε grid, Square with 5,000 queries) training dominates and '
             'needs a GPU; rerun this script there with `--scale paper --device cuda` to plan it.', '']
    Path(a.out).write_text('\n'.join(lines))
    print('\n'.join(lines[-4:]))

if __name__ == '__main__':
    main()
