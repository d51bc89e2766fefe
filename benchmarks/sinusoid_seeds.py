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
meta-test tasks, keeping every task's curve: a rare task whose fine-tuning blows up
(query MSE above ``BLOWN_UP_MSE`` at some step) can make the protocol's mean over tasks
astronomically large, so the summary also gives the mean over the other tasks and the
count of those that blew up.

Writes the ``sinusoid_seeds`` section of BENCHMARKS.md and
``minimaml/data/sinusoid_seeds.json`` (shipped with the package, so that chapter 3 can
quote it anywhere). "Same seed, same numbers" is promised on one machine: XLA's CPU
kernels can differ between processor types, so the same seed elsewhere may give other
(equally valid) numbers.
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
from minimaml.evaluate import finetune_curves, mean_ci95  # noqa: E402
from minimaml.runs import versions  # noqa: E402

JSON_PATH = ROOT / "minimaml" / "data" / "sinusoid_seeds.json"
RUNS = ROOT / "runs" / "sinusoid_seeds"
PAPER_K5 = {"maml": {"1": 0.67, "5": 0.38, "10": 0.35},
            "pretrained": {"1": 2.41, "5": 2.23, "10": 2.19}}   # the paper's Table 2 (K = 5)
SHOWN_STEPS = (0, 1, 5, 10)
BLOWN_UP_MSE = 1e3   # as the playground's DIVERGED_MSE: far above any sine's error (≈ 4 for predicting 0)


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


def task_curves(out, config):
    """The meta-test of the saved θs again, keeping every task's curve: {model: {K: (tasks, steps + 1)}}."""
    curves = {}
    for name in ("maml", "pretrained"):
        params = sinusoid.load_params(out / f"{name}_params.npz")
        curves[name] = {}
        for shots in config.eval_shots:
            tasks = sinusoid.evaluation_tasks(config, shots)
            curves[name][str(shots)] = finetune_curves(params, sinusoid.sine_loss, tasks.support,
                                                       tasks.query, config.inner_lr, config.eval_steps)
    return curves


def run_summary(curves, protocol):
    """One model at one K in one run: the protocol's numbers (metrics.json) and the same
    mean with the blown-up tasks left out, with their count."""
    blown = (~np.isfinite(curves) | (np.abs(curves) > BLOWN_UP_MSE)).any(axis=1)
    kept = curves[~blown]
    mean, ci = mean_ci95(kept)
    return {"protocol_mean": protocol["mse"], "protocol_ci95": protocol["ci95"],
            "protocol_left_out": protocol["diverged_tasks"],
            "blown_up": int(blown.sum()), "tasks": len(curves),
            "mean": mean.tolist(), "ci95": ci.tolist(),
            "median_over_tasks": np.median(kept, axis=0).tolist(),
            "worse_after_10_than_1": int((kept[:, 10] > kept[:, 1]).sum())}


def study(seeds, inner_lr, meta_steps, runs_dir=RUNS):
    """Run every seed at one α; return per-run results and the over-seed summary."""
    label = f"alpha{inner_lr:g}"
    runs = []
    for seed in seeds:
        out = runs_dir / f"{label}_seed{seed}"
        metrics = run_one(seed, inner_lr, meta_steps, out)
        config = sinusoid.Config(**{**metrics["config"], "hidden": tuple(metrics["config"]["hidden"]),
                                    "eval_shots": tuple(metrics["config"]["eval_shots"])})
        curves = task_curves(out, config)
        runs.append({"seed": seed, "train_seconds": metrics["train_seconds"],
                     "pretrain_seconds": metrics["pretrain_seconds"], "versions": metrics["versions"],
                     **{name: {k: run_summary(curves[name][k], metrics[name][k]) for k in curves[name]}
                        for name in curves}})
    summary = {}
    for name in ("maml", "pretrained"):
        summary[name] = {}
        for k in ("5", "10", "20"):
            mean = np.array([r[name][k]["mean"] for r in runs])        # (seeds, steps + 1)
            protocol = np.array([r[name][k]["protocol_mean"] for r in runs])
            summary[name][k] = {
                "mean": mean.mean(0).tolist(),
                "std": mean.std(0, ddof=1).tolist() if len(runs) > 1 else [0.0] * mean.shape[1],
                "min": mean.min(0).tolist(), "max": mean.max(0).tolist(),
                "mean_ci95": np.mean([r[name][k]["ci95"] for r in runs], axis=0).tolist(),
                "blown_up": [r[name][k]["blown_up"] for r in runs],
                "protocol_median": np.median(protocol, 0).tolist(),
                "protocol_min": protocol.min(0).tolist(), "protocol_max": protocol.max(0).tolist()}
    return {"inner_lr": inner_lr, "meta_steps": meta_steps, "seeds": list(seeds),
            "blown_up_mse": BLOWN_UP_MSE, "runs": runs, "summary": summary}


def cell(s, n):
    return f"{s['mean'][n]:.3f} ± {s['std'][n]:.3f} ({s['min'][n]:.3f}–{s['max'][n]:.3f}; CI ± {s['mean_ci95'][n]:.3f})"


def report(studies, machine, command, seconds):
    lines = [
        "## Sinusoid results across seeds (paper config)",
        "",
        f"Command: `{command}` · machine: {machine} · versions: "
        + ", ".join(f"{k} {v}" for k, v in studies[0]["runs"][0]["versions"].items()
                    if k in ("minimaml", "jax", "optax", "numpy", "python", "backend"))
        + f" · this invocation {seconds / 60:.0f} min (runs already in runs/sinusoid_seeds/ are "
        "reused, not rerun), niced, beside other work.",
        "",
        "Each run is `python -m minimaml.sinusoid --seed S [--inner-lr A]`: the paper's config "
        "(70,000 meta-steps, meta-batch 25, K = 10 + 10, one inner step, Adam 1e-3, second "
        "order), MAML and the pretrained baseline from the same initialisation, meta-tested "
        "on 600 fresh tasks per K (the seed also picks them) with SGD at the same α. Then "
        "the saved θs are fine-tuned on the same tasks again, keeping every task's curve.",
        "",
        f"**A task blows up** when its query MSE passes {BLOWN_UP_MSE:g} (or stops being "
        "finite) at some step; the zero function's MSE is about 4. The protocol's mean "
        "(metrics.json, the CLI's table) leaves out only non-finite tasks, so one task at "
        "1e11 makes it 1e8. The tables give the **mean over the tasks that did not blow up, "
        "as mean ± std over seeds** (min–max over seeds; CI: the per-run 95% CI half-width "
        "over tasks, averaged over seeds), and under them, per seed, how many tasks blew up "
        "and the protocol's mean. The CI measures how much the 600 meta-test tasks move one "
        "run's mean; the std over seeds also holds what the seed does to training. Same "
        "seed, same numbers is promised on one machine; XLA's CPU kernels can differ "
        "between processor types, so the same seed elsewhere may give other numbers.",
        ""]
    for st in studies:
        lines += [f"### α = {st['inner_lr']:g} (training and meta-test), seeds {', '.join(map(str, st['seeds']))}", "",
                  "| model | K | " + " | ".join(f"{n} step{'s' * (n != 1)}" for n in SHOWN_STEPS) + " |",
                  "|---|---|" + "---|" * len(SHOWN_STEPS)]
        for name in ("maml", "pretrained"):
            for k in ("5", "10", "20"):
                s = st["summary"][name][k]
                lines.append(f"| {name} | {k} | " + " | ".join(cell(s, n) for n in SHOWN_STEPS) + " |")
        lines.append("")
        for name in ("maml", "pretrained"):
            for k in ("5", "10", "20"):
                s = st["summary"][name][k]
                lines.append(f"- {name}, K = {k}: tasks blown up per seed {', '.join(map(str, s['blown_up']))}; "
                             f"protocol mean after 10 steps {s['protocol_min'][10]:.3g}–{s['protocol_max'][10]:.3g} "
                             f"over seeds (median {s['protocol_median'][10]:.3g})")
        worse = [r["maml"]["5"]["worse_after_10_than_1"] for r in st["runs"]]
        k5 = st["summary"]["maml"]["5"]
        lines += ["", "MAML at K = 5: the std over seeds is "
                  + ", ".join(f"{k5['std'][n] / k5['mean_ci95'][n]:.1f}×" for n in (1, 5, 10))
                  + " the per-run CI half-width after 1 / 5 / 10 steps; tasks (of those kept) that "
                  f"end worse after 10 steps than after 1, per seed: {', '.join(map(str, worse))}. "
                  "Paper (Table 2, K = 5): MAML 0.67 / 0.38 / 0.35, pretrained 2.41 / 2.23 / 2.19 "
                  "after 1 / 5 / 10 steps. MAML meta-training wall time per seed: "
                  + ", ".join(f"{r['train_seconds']:.0f}" for r in st["runs"])
                  + " s (a loaded, shared machine: see sinusoid_speed for speed).", ""]
    return "\n".join(lines)


def compact_json(data, digits=6):
    """JSON on one line, floats to ``digits`` significant digits (it ships in the package)."""
    def rounded(value):
        if isinstance(value, float):
            return float(f"{value:.{digits}g}")
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value
    return json.dumps(rounded(data), separators=(",", ":")) + "\n"


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
    JSON_PATH.write_text(compact_json({"machine": machine, "command": command, "paper_k5": PAPER_K5,
                                       "studies": studies, "versions": versions()}))
    write_section("sinusoid_seeds", text)
    print(f"wrote {JSON_PATH.relative_to(ROOT)} and the sinusoid_seeds section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
