"""One-shot GPU check for Omniglot MAML: tasks/s, then as long a 5-way 1-shot run as fits.

Made to run once on a lent GPU machine inside a 15-minute device budget (one command of
at most 10 minutes). It needs only jax (CUDA), optax, numpy, pillow, tqdm and
matplotlib there — no pooch, no network — and the two ``.npz`` files (plus
``id_to_alphabet.json``) in ``--data``. Steps, each bounded by ``--deadline`` seconds
from the start:

1. second-order tasks/s for 5-way 1-shot (meta-batch 32, 1 step) and 20-way 1-shot
   (meta-batch 16, 5 steps), native conv (the GPU default) and im2col for 5-way;
2. a paper-config 5-way 1-shot run (second order) that stops when the time left runs
   out (``max_train_seconds``), with test accuracy on 600 test tasks (3 steps).

Writes ``$OUT/omniglot_gpu.json`` and ``$OUT/omniglot_gpu.md`` (card, versions, numbers)
and the run's ``metrics.json`` / ``learning_curve.png``. Back on the workstation,
``python benchmarks/omniglot_gpu.py --record DIR`` puts the markdown into BENCHMARKS.md.

Device command (data copied into the ignored ``runs/gpu_data`` and carried)::

    mkdir -p runs/gpu_data && cp "$MINIMAML_OMNIGLOT_DIR"/{images_*.npz,id_to_alphabet.json} runs/gpu_data/
    # run(carry=["runs/gpu_data"], timeout_s=600):
    python3 benchmarks/omniglot_gpu.py --data runs/gpu_data --out $OUT --deadline 540
"""
import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys
import time

START = time.perf_counter()
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def elapsed():
    return time.perf_counter() - START


def card():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (nvidia-smi failed)"


def record(result_dir):
    from benchmarks.report import write_section
    result = json.loads((pathlib.Path(result_dir) / "omniglot_gpu.json").read_text())
    if result["backend"] != "gpu":
        print(f"error: {result_dir} holds a run on {result['backend']!r}, not a GPU run; "
              f"nothing recorded", file=sys.stderr)
        return 2
    text = (pathlib.Path(result_dir) / "omniglot_gpu.md").read_text()
    write_section("omniglot_gpu", text)
    print(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="runs/gpu_data")
    p.add_argument("--out", default="runs/omniglot_gpu")
    p.add_argument("--deadline", type=float, default=540.0,
                   help="seconds from start by which everything must be written")
    p.add_argument("--timing-steps", type=int, default=200,
                   help="meta-iterations per timed chunk")
    p.add_argument("--filters", type=int, default=64, help="conv width (64: paper; "
                   "smaller only for a dry run on a CPU)")
    p.add_argument("--eval-tasks", type=int, default=600)
    p.add_argument("--record", metavar="DIR", help="write DIR/omniglot_gpu.md into "
                   "BENCHMARKS.md and exit (run this on the workstation)")
    args = p.parse_args(argv)
    if args.record:
        return record(args.record)

    import jax
    import numpy as np
    from minimaml import omniglot as og
    from minimaml.maml import maml_objective
    from minimaml.nets import conv2d_im2col, conv2d_native
    from minimaml.train import optimize

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"card": card(), "jax": jax.__version__, "backend": jax.default_backend(),
              "devices": [str(d) for d in jax.devices()], "python": sys.version.split()[0],
              "speed": [], "run": None}
    print(json.dumps(result), flush=True)

    data = og.load(args.data, cache_dir="/tmp/minimaml_cache", progress=False)
    paper = lambda ways, **kw: og.paper_config(ways, 1, filters=args.filters,
                                               eval_tasks=args.eval_tasks, **kw)
    print(f"data loaded at {elapsed():.0f} s", flush=True)

    def tasks_per_second(config, conv, chunk):
        train_images, _ = og.split_images(data, config)
        _, loss_fn = og.classifier(conv)
        sampler = og.task_sampler(train_images, config.meta_batch, config.ways,
                                  config.shots, config.queries)
        objective = lambda p_, s, q: maml_objective(
            p_, loss_fn, s, q, config.inner_lr, config.inner_steps,
            first_order=config.first_order)
        marks = [time.perf_counter()]
        optimize(og.init_params(config), objective, sampler, jax.random.key(0),
                 steps=3 * chunk, steps_per_call=chunk,
                 on_chunk=lambda *_: marks.append(time.perf_counter()))
        per_chunk = np.diff(marks)
        best = float(np.min(per_chunk[1:]))
        return {"compile_chunk_s": round(float(per_chunk[0]), 1),
                "ms_per_iteration": round(best / chunk * 1000, 3),
                "tasks_per_s": round(config.meta_batch * chunk / best, 1)}

    speed_rows = [("5-way 1-shot, second order, native conv", paper(5),
                   conv2d_native, args.timing_steps),
                  ("20-way 1-shot, second order, native conv", paper(20),
                   conv2d_native, max(2, args.timing_steps // 4)),
                  ("5-way 1-shot, second order, im2col", paper(5),
                   conv2d_im2col, args.timing_steps)]
    for name, config, conv, chunk in speed_rows:
        if elapsed() > 0.35 * args.deadline:
            print(f"skipping '{name}': keeping time for the training run", flush=True)
            continue
        r = tasks_per_second(config, conv, chunk)
        result["speed"].append({"name": name, **r})
        print(name, json.dumps(r), flush=True)
        (out / "omniglot_gpu.json").write_text(json.dumps(result, indent=1))

    # The training run: what is left, minus room for compile, evaluation and writing.
    left = args.deadline - elapsed()
    budget = max(30.0, left - 90.0)
    # chunks of ~15 s at the measured rate, so the time limit is overshot by little
    per_step = result["speed"][0]["ms_per_iteration"] / 1000 if result["speed"] else 0.05
    chunk = int(min(2000, max(20, 15 / per_step)))
    config = paper(5, eval_every=50 * chunk, steps_per_call=chunk,
                             checkpoint_seconds=1e9, max_train_seconds=budget)
    print(f"training for up to {budget:.0f} s (of {left:.0f} s left)", flush=True)
    wall = time.perf_counter()
    _, metrics, _ = og.run(config, data, out / "run", progress=False, conv=conv2d_native,
                           log=lambda m: print(m, flush=True))
    metrics["wall_seconds"] = round(time.perf_counter() - wall, 1)
    result["run"] = {k: metrics[k] for k in ("test_accuracy", "train_seconds", "meta_steps",
                                             "evals", "wall_seconds")}
    result["run"]["config"] = dataclasses.asdict(config)
    (out / "omniglot_gpu.json").write_text(json.dumps(result, indent=1))

    acc = metrics["test_accuracy"]
    title = ("## Omniglot MAML on a GPU" if result["backend"] == "gpu" else
             f"## Omniglot GPU script, dry run on {result['backend']} (not a GPU result)")
    lines = [title, "",
             f"Card: {result['card']}; jax {result['jax']} ({result['backend']}), "
             f"Python {result['python']}. Command: `python3 benchmarks/omniglot_gpu.py "
             f"--data runs/gpu_data --deadline {args.deadline:.0f}` (one device call); "
             f"filters {args.filters}.", "",
             "| configuration | ms / meta-iteration (best chunk) | tasks / s | compile, s |",
             "|---|---|---|---|"]
    for r in result["speed"]:
        lines.append(f"| {r['name']} | {r['ms_per_iteration']} | {r['tasks_per_s']} | "
                     f"{r['compile_chunk_s']} |")
    lines += ["", f"Training run (paper 5-way 1-shot config, second order, native conv): "
              f"{metrics['meta_steps']} meta-steps in {metrics['train_seconds']:.0f} s of "
              f"training ({metrics['wall_seconds']:.0f} s with evaluation); test accuracy "
              f"{100 * acc['mean']:.2f} ± {100 * acc['ci95']:.2f}% ({acc['tasks']} tasks, "
              f"{acc['steps']} steps, 95% CI). Paper: 98.7 ± 0.4% after 60,000 steps."]
    if result["speed"]:
        per_step = result["speed"][0]["ms_per_iteration"] / 1000
        lines.append(f"At the measured rate, 60,000 steps would take "
                     f"{60_000 * per_step / 60:.1f} min.")
    (out / "omniglot_gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    print(f"done at {elapsed():.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
