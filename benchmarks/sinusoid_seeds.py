"""How much the sinusoid results move with the seed: the paper's config, several seeds.

    python benchmarks/sinusoid_seeds.py                      # seeds 0-4, α = 0.01 and 0.001
    python benchmarks/sinusoid_seeds.py --seeds 10 --inner-lr 0.01
    python benchmarks/sinusoid_seeds.py --quick              # 300 meta-steps, print only

Every run is exactly the command line ``python -m minimaml.sinusoid --seed S
[--inner-lr A]`` (the paper's config: 70,000 meta-steps, meta-batch 25, K = 10 + 10,
one inner step, Adam 1e-3, second order; meta-test on 600 fresh tasks per K), each in
its own process, writing to ``runs/sinusoid_seeds/<alpha>_seed<S>/``. A run whose
``metrics.json`` is already there with the same config is not run again, so an
interrupted study resumes. Then, per run, the saved θs are fine-tuned once more on the
K = 5 meta-test tasks to count the tasks that end worse after 10 steps than after 1.

Writes the ``sinusoid_seeds`` section of BENCHMARKS.md and
``minimaml/data/sinusoid_seeds.json`` (shipped with the package, so that chapter 3 can
quote it anywhere). "Same seed, same numbers" holds on one machine: XLA's CPU kernels
differ between CPUs, so the same seed elsewhere gives other (equally valid) numbers.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minimaml import sinusoid  # noqa: E402
from minimaml.evaluate import finetune_curves  # noqa: E402
from minimaml.runs import versions  # noqa: E402

JSON_PATH = ROOT / "minimaml" / "data" / "sinusoid_seeds.json"
RUNS = ROOT / "runs" / "sinusoid_seeds"
PAPER_K5 = {"maml": {"1": 0.67, "5": 0.38, "10": 0.35},
            "pretrained": {"1": 2.41, "5": 2.23, "10": 2.19}}   # the paper's Table 2 (K = 5)
SHOWN_STEPS = (0, 1, 5, 10)


def run_one(seed, inner_lr, meta_steps, out):
    """The CLI run for one seed (skipped when ``out`` already holds its metrics)."""
    metrics_path = out / "metrics.json"
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        config = metrics["config"]
        if (config["seed"], config["inner_lr"], config["meta_steps"]) == (seed, inner_lr, meta_steps):
            print(f"  {out.name}: done before, reused", flush=True)
            return metrics
    command = [sys.executable, "-m", "minimaml.sinusoid", "--seed", str(seed),
               "--inner-lr", str(inner_lr), "--meta-steps", str(meta_steps),
               "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    print(f"  {out.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(metrics_path.read_text())


def k5_task_counts(out, config):
    """K = 5 meta-test, per task: how many end worse after 10 steps than after 1; medians."""
    counts = {}
    tasks = sinusoid.evaluation_tasks(config, 5)
    for name in ("maml", "pretrained"):
        params = sinusoid.load_params(out / f"{name}_params.npz")
        curves = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query,
                                 config.inner_lr, config.eval_steps)
        curves = curves[np.isfinite(curves).all(axis=1)]
        counts[name] = {"worse_after_10_than_1": int((curves[:, 10] > curves[:, 1]).sum()),
                        "tasks": len(curves),
                        "median": {str(n): float(np.median(curves[:, n])) for n in SHOWN_STEPS}}
    return counts


def study(seeds, inner_lr, meta_steps, runs_dir=RUNS):
    """Run every seed at one α; return per-run results and the over-seed summary."""
    label = f"alpha{inner_lr:g}"
    runs = []
    for seed in seeds:
        out = runs_dir / f"{label}_seed{seed}"
        metrics = run_one(seed, inner_lr, meta_steps, out)
        config = sinusoid.Config(**{**metrics["config"], "hidden": tuple(metrics["config"]["hidden"]),
                                    "eval_shots": tuple(metrics["config"]["eval_shots"])})
        runs.append({"seed": seed, "train_seconds": metrics["train_seconds"],
                     "pretrain_seconds": metrics["pretrain_seconds"],
                     "versions": metrics["versions"],
                     **{name: {k: {"mse": metrics[name][k]["mse"], "ci95": metrics[name][k]["ci95"],
                                   "diverged_tasks": metrics[name][k]["diverged_tasks"]}
                               for k in ("5", "10", "20")} for name in ("maml", "pretrained")},
                     "k5_tasks": k5_task_counts(out, config)})
    summary = {}
    for name in ("maml", "pretrained"):
        summary[name] = {}
        for k in ("5", "10", "20"):
            mse = np.array([r[name][k]["mse"] for r in runs])        # (seeds, steps + 1)
            ci = np.array([r[name][k]["ci95"] for r in runs])
            summary[name][k] = {"mean": mse.mean(0).tolist(),
                                "std": mse.std(0, ddof=1).tolist() if len(runs) > 1 else [0.0] * mse.shape[1],
                                "min": mse.min(0).tolist(), "max": mse.max(0).tolist(),
                                "mean_ci95": ci.mean(0).tolist()}
    return {"inner_lr": inner_lr, "meta_steps": meta_steps, "seeds": list(seeds),
            "runs": runs, "summary": summary}


def cell(s, n):
    return f"{s['mean'][n]:.3f} ± {s['std'][n]:.3f} ({s['min'][n]:.3f}–{s['max'][n]:.3f}; CI ± {s['mean_ci95'][n]:.3f})"


def report(studies, machine, command, seconds):
    lines = [
        "## Sinusoid results across seeds (paper config)",
        "",
        f"Command: `{command}` · machine: {machine} · versions: "
        + ", ".join(f"{k} {v}" for k, v in studies[0]["runs"][0]["versions"].items()
                    if k in ("minimaml", "jax", "optax", "numpy", "python", "backend"))
        + f" · {seconds / 60:.0f} min in all, niced, beside other work.",
        "",
        "Each run is `python -m minimaml.sinusoid --seed S [--inner-lr A]`: the paper's config "
        "(70,000 meta-steps, meta-batch 25, K = 10 + 10, one inner step, Adam 1e-3, second "
        "order), MAML and the pretrained baseline from the same initialisation, meta-tested "
        "on 600 fresh tasks per K (the seed also picks them) with SGD at the same α. "
        "Cells: query MSE, **mean ± std over seeds** (min–max over seeds; CI: the per-run 95% "
        "CI half-width, 1.96·std/√600 over tasks, averaged over seeds). The CI measures how "
        "much the 600 meta-test tasks could move one run's mean; the std over seeds also "
        "holds what the seed does to training. Same seed, same numbers holds on one "
        "machine; XLA's CPU kernels differ between CPUs, so the same seed elsewhere gives "
        "other numbers.",
        ""]
    for st in studies:
        lines += [f"### α = {st['inner_lr']:g} (training and meta-test), seeds {', '.join(map(str, st['seeds']))}", "",
                  "| model | K | " + " | ".join(f"{n} step{'s' * (n != 1)}" for n in SHOWN_STEPS) + " |",
                  "|---|---|" + "---|" * len(SHOWN_STEPS)]
        for name in ("maml", "pretrained"):
            for k in ("5", "10", "20"):
                s = st["summary"][name][k]
                lines.append(f"| {name} | {k} | " + " | ".join(cell(s, n) for n in SHOWN_STEPS) + " |")
        worse = [r["k5_tasks"]["maml"]["worse_after_10_than_1"] for r in st["runs"]]
        k5 = st["summary"]["maml"]["5"]
        lines += ["", "MAML at K = 5: the std over seeds is "
                  + ", ".join(f"{k5['std'][n] / k5['mean_ci95'][n]:.1f}×" for n in (1, 5, 10))
                  + " the per-run CI half-width after 1 / 5 / 10 steps."]
        lines += ["", f"Paper (Table 2, K = 5, α = 0.01 in its text): MAML 0.67 / 0.38 / 0.35, "
                  f"pretrained 2.41 / 2.23 / 2.19 after 1 / 5 / 10 steps. MAML K = 5 tasks (of 600) "
                  f"that end worse after 10 steps than after 1, per seed: {', '.join(map(str, worse))}. "
                  f"MAML meta-training wall time per seed: "
                  + ", ".join(f"{r['train_seconds']:.0f}" for r in st["runs"])
                  + " s (a loaded, shared machine: see sinusoid_speed for speed).", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    parser.add_argument("--inner-lr", type=float, nargs="+", default=[0.01, 0.001],
                        help="α values to study (default: the paper's 0.01, the official code's 0.001)")
    parser.add_argument("--quick", action="store_true", help="300 meta-steps, 2 seeds, print only")
    args = parser.parse_args(argv)
    if args.seeds < 2 and not args.quick:
        parser.error("--seeds must be at least 2 (a spread needs two runs)")
    seeds = range(2 if args.quick else args.seeds)
    meta_steps = 300 if args.quick else 70_000
    start = time.perf_counter()
    studies = []
    for inner_lr in args.inner_lr:
        print(f"α = {inner_lr:g}:", flush=True)
        studies.append(study(seeds, inner_lr, meta_steps, RUNS / "quick" if args.quick else RUNS))
    seconds = time.perf_counter() - start
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import machine_description, write_section
    machine = machine_description()
    command = "python benchmarks/sinusoid_seeds.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    text = report(studies, machine, command, seconds)
    print(text)
    if args.quick:
        return 0
    JSON_PATH.write_text(json.dumps({"machine": machine, "command": command,
                                     "paper_k5": PAPER_K5, "studies": studies,
                                     "versions": versions()}, indent=1))
    write_section("sinusoid_seeds", text)
    print(f"wrote {JSON_PATH.relative_to(ROOT)} and the sinusoid_seeds section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
