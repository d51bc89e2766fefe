"""Omniglot MAML speed on this machine: ms per meta-iteration, the library's own path.

Times :func:`minimaml.train.optimize` exactly as ``python -m minimaml.omniglot`` runs it
(tasks sampled on device inside the jitted ``lax.scan`` chunk), after a compile chunk,
for the paper's 5-way 1-shot config (meta-batch 32, one query per class) second and
first order, for 20-way 1-shot (meta-batch 16, 5 inner steps), and — for the record —
the native ``lax.conv_general_dilated`` under ``vmap`` (a grouped conv on CPU).
Writes its section of BENCHMARKS.md. The load average is recorded before and after:
on a shared machine, compare rows of one run only.

    python benchmarks/omniglot_speed.py [--data DIR] [--chunks 3]   # default: $MINIMAML_OMNIGLOT_DIR

``--record-run DIR`` instead writes the section ``omniglot_cpu_training`` from a
finished (or time-limited) CLI run's ``DIR/metrics.json``: test accuracy against
training wall time at every evaluation, e.g. for the run

    python -m minimaml.omniglot --ways 5 --shots 1 \
        --out runs/omniglot_long --eval-every 500 --max-minutes 60
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.report import machine_description, write_section  # noqa: E402
from minimaml import omniglot as og  # noqa: E402
from minimaml.maml import maml_objective  # noqa: E402
from minimaml.nets import conv2d_im2col, conv2d_native  # noqa: E402
from minimaml.train import optimize  # noqa: E402


def ms_per_iteration(config, train_images, conv, chunk, chunks):
    """Median and min ms per meta-iteration over ``chunks`` timed chunks (after compile)."""
    _, loss_fn = og.classifier(conv)
    sampler = og.task_sampler(train_images, config.meta_batch, config.ways, config.shots,
                              config.queries)

    def objective(p, s, q):
        return maml_objective(p, loss_fn, s, q, config.inner_lr, config.inner_steps,
                              first_order=config.first_order)

    marks = [time.perf_counter()]
    optimize(og.init_params(config), objective, sampler, jax.random.key(0),
             steps=chunk * (chunks + 1), steps_per_call=chunk,
             on_chunk=lambda *_: marks.append(time.perf_counter()))
    times = np.diff(marks) / chunk * 1000
    return {"compile_chunk_s": round(float(times[0]) * chunk / 1000, 1),
            "median_ms": round(float(np.median(times[1:])), 1),
            "min_ms": round(float(np.min(times[1:])), 1)}


def load_average():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def record_run(run_dir, note=""):
    """BENCHMARKS.md section from a CLI run's metrics.json: accuracy vs training time."""
    run_dir = pathlib.Path(run_dir)
    if (run_dir / "metrics.json").exists():
        m = json.loads((run_dir / "metrics.json").read_text())
    else:   # a run stopped before it finished: its last checkpoint holds the evaluations
        with np.load(run_dir / "checkpoint.npz") as ckpt:
            m = json.loads(str(ckpt["state"]))
        note = f"(Run stopped before its end; read from its last checkpoint.) {note}"
    c = m["config"]
    lines = [
        "## Omniglot MAML training run (CPU)", "",
        f"Machine: {machine_description()}.",
        f"Command: `python -m minimaml.omniglot --ways {c['ways']} --shots {c['shots']} "
        f"--out {run_dir} --eval-every {c['eval_every']} "
        f"--max-minutes {c['max_train_seconds'] / 60:g}` ({'first' if c['first_order'] else 'second'} "
        f"order, meta-batch {c['meta_batch']}, {c['inner_steps']} inner step at "
        f"α = {c['inner_lr']}, {c['filters']} filters, Adam {c['meta_lr']}).",
        f"Test: {c['eval_tasks']} tasks from the 423 held-out characters, "
        f"{c['eval_inner_steps']} SGD steps, {c['eval_queries']} queries per class in groups "
        f"of one per class (the training query shape), mean ± 95% CI over tasks. "
        f"Training time counts compilation, not evaluation. {note}".rstrip(), "",
        "| meta-steps | training time, min | test accuracy, % | s / meta-step since the "
        "previous row |", "|---|---|---|---|"]
    previous = {"step": 0, "train_seconds": 0.0}
    for e in m["evals"]:
        rate = (e["train_seconds"] - previous["train_seconds"]) / max(1, e["step"] - previous["step"])
        lines.append(f"| {e['step']:,} | {e['train_seconds'] / 60:.1f} | "
                     f"{100 * e['accuracy']:.2f} ± {100 * e['ci95']:.2f} | {rate:.3f} |")
        previous = e
    write_section("omniglot_cpu_training", "\n".join(lines))
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None,
                   help="Omniglot data (default: $MINIMAML_OMNIGLOT_DIR, else download)")
    p.add_argument("--chunks", type=int, default=3, help="timed chunks per row")
    p.add_argument("--chunk", type=int, default=10, help="meta-iterations per chunk")
    p.add_argument("--skip-native", action="store_true",
                   help="skip the (slow on CPU) native-conv row")
    p.add_argument("--record-run", metavar="DIR",
                   help="write the training-run section from DIR/metrics.json and exit")
    p.add_argument("--note", default="", help="text appended to the run section (load etc.)")
    args = p.parse_args(argv)
    if args.record_run:
        return record_run(args.record_run, args.note)

    data = og.load(args.data, progress=False)
    rows = [
        ("5-way 1-shot, second order, im2col (library default on CPU)",
         og.paper_config(5, 1), conv2d_im2col, args.chunk, args.chunks),
        ("5-way 1-shot, first order, im2col", og.paper_config(5, 1, first_order=True),
         conv2d_im2col, args.chunk, args.chunks),
        ("20-way 1-shot, second order (5 steps, meta-batch 16), im2col",
         og.paper_config(20, 1), conv2d_im2col, max(2, args.chunk // 2), args.chunks),
    ]
    if not args.skip_native:
        rows.append(("5-way 1-shot, second order, native conv under vmap (grouped conv)",
                     og.paper_config(5, 1), conv2d_native, 2, 1))
    load_before = load_average()
    results = []
    for name, config, conv, chunk, chunks in rows:
        train_images, _ = og.split_images(data, config)
        r = ms_per_iteration(config, train_images, conv, chunk, chunks)
        r["tasks_per_s"] = round(config.meta_batch / r["median_ms"] * 1000, 1)
        results.append((name, r))
        print(name, json.dumps(r), flush=True)
    load_after = load_average()

    lines = [
        "## Omniglot MAML speed (CPU)",
        "",
        f"Machine: {machine_description()}.",
        f"Command: `python benchmarks/omniglot_speed.py --chunks {args.chunks} "
        f"--chunk {args.chunk}`; load average (1/5/15 min) before: {load_before}, "
        f"after: {load_after} (a shared 2-core machine: compare rows of this run only).",
        "Each row times `minimaml.train.optimize` as the CLI runs it (task sampling on "
        "device inside the jitted chunk), median (min) over the timed chunks after a "
        "compile chunk. Paper configs: 5-way meta-batch 32, 1 inner step; 20-way "
        "meta-batch 16, 5 inner steps; one query per class.",
        "",
        "| configuration | ms / meta-iteration, median (min) | tasks / s | compile chunk, s |",
        "|---|---|---|---|",
    ]
    for name, r in results:
        lines.append(f"| {name} | {r['median_ms']} ({r['min_ms']}) | {r['tasks_per_s']} | "
                     f"{r['compile_chunk_s']} |")
    write_section("omniglot_speed", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
