"""The MAML family on both benchmarks: one table each, written into BENCHMARKS.md.

Every variant is trained by the command line (``--algorithm``) with the same seed, the
same meta-batch and Adam(1e-3), and meta-tested with its benchmark's protocol:

- sinusoid: the paper's config, 70,000 meta-steps, K = 10 in training; query MSE after
  1, 5 and 10 fine-tuning steps at K = 5 and K = 10 on 600 fixed fresh tasks;
- Omniglot 5-way 1-shot: the same CPU budget for each (``--max-cpu-minutes``: CPU time
  of all the process's threads in training, compilation included, evaluation not — a
  budget a busy shared machine does not shrink); test accuracy after 3 steps on 600 tasks.

Each run goes to ``runs/family/<benchmark>/<algorithm>/``; a run whose ``metrics.json``
is there is not run again (delete the folder to redo it). Then the section
``family_<benchmark>`` of BENCHMARKS.md is written, and ``minimaml/data/family_<benchmark>.json``
(the table's numbers, for chapter 8), and for the sinusoid the trained θ (and learned
rates) of every variant into ``minimaml/data/family_sinusoid.npz`` (the chapter's widget).

    nice -n 5 python benchmarks/family_results.py sinusoid
    nice -n 5 python benchmarks/family_results.py omniglot --minutes 4
"""
import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.report import machine_description, write_section  # noqa: E402
from minimaml import npz  # noqa: E402
from minimaml.family import ALGORITHMS  # noqa: E402

# Per-variant settings: the paper's where it gives them for this benchmark, else ours
# (from a few short runs, not tuned further), stated in the table. Keys are run labels;
# "<algorithm>_<what>" is a second setting of that algorithm (ANIL fine-tuned with a
# smaller step). MAML++ on the sinusoid: its rates' Adam step is scaled to their size
# (rate_meta_lr = β·α/0.1, see minimaml.family.mamlpp); with θ's β they diverge.
SINUSOID = {
    "maml": [], "fomaml": [], "metasgd": [], "anil": [],
    "anil_finetune-lr-0.005": ["--algorithm-option", "eval_inner_lr=0.005"],
    "mamlpp": ["--inner-steps", "5", "--algorithm-option", "rate_meta_lr=0.0001"],
    "reptile": ["--inner-steps", "5", "--inner-lr", "0.02",
                "--algorithm-option", "eval_inner_lr=0.01"],
    "imaml": ["--inner-steps", "40", "--inner-lr", "0.002", "--algorithm-option", "reg=5",
              "--eval-steps", "40"],
}
OMNIGLOT = {    # the papers' Omniglot settings where given (MAML++: the official config's
    # 5 steps from α = 0.1, second order from the start; iMAML: the authors' README,
    # 16 steps at α = 0.1, λ = 2, 5 CG steps), each meta-tested with the steps it trained
    # with where that differs from MAML's 3 (Meta-SGD: one, as in its paper)
    "maml": [], "fomaml": [], "metasgd": ["--eval-inner-steps", "1"], "anil": [],
    "mamlpp": ["--inner-steps", "5", "--inner-lr", "0.1", "--eval-inner-steps", "5",
               "--algorithm-option", "first_order_steps=0"],
    "reptile": ["--inner-steps", "5"],
    "imaml": ["--inner-steps", "16", "--inner-lr", "0.1", "--algorithm-option", "reg=2",
              "--eval-inner-steps", "16"],
}


LEARNED_RATES = ("metasgd", "mamlpp")   # fine-tuned with rates learned for inner_steps steps


def algorithm_of(label):
    return label.split("_")[0]


def command(benchmark, label, out, args):
    if benchmark == "sinusoid":
        base = ["-m", "minimaml.sinusoid", "--meta-steps", str(args.meta_steps),
                "--eval-tasks", "600"]
        extra = SINUSOID[label]
    else:
        base = ["-m", "minimaml.omniglot", "--ways", "5", "--shots", "1",
                "--meta-steps", str(args.meta_steps), "--max-cpu-minutes", str(args.minutes),
                "--steps-per-call", "10", "--checkpoint-minutes", "1000"]
        extra = OMNIGLOT[label]
    return base + ["--algorithm", algorithm_of(label), *extra, "--out", str(out),
                   "--no-progress"]


def run_all(benchmark, args):
    runs = {}
    labels = SINUSOID if benchmark == "sinusoid" else OMNIGLOT
    for label in [l for l in labels if algorithm_of(l) in args.algorithms]:
        out = pathlib.Path(args.runs_dir) / benchmark / label
        cmd = command(benchmark, label, out, args)
        failure = out / "failed.txt"    # the CLI's last error line, when it wrote no metrics
        if not (out / "metrics.json").exists() and not failure.exists() \
                and not args.collect_only:
            print(f"--- {label}: python {shlex.join(cmd)}", flush=True)
            start = time.perf_counter()
            result = subprocess.run([sys.executable, *cmd], cwd=ROOT, stderr=subprocess.PIPE,
                                    text=True)
            sys.stderr.write(result.stderr[-3000:])
            print(f"    {label}: exit {result.returncode} after "
                  f"{(time.perf_counter() - start) / 60:.1f} min", flush=True)
            if result.returncode != 0:
                out.mkdir(parents=True, exist_ok=True)
                errors = [l for l in result.stderr.splitlines() if l.startswith("error:")]
                failure.write_text(errors[-1] if errors else f"exit {result.returncode}")
        metrics = (json.loads((out / "metrics.json").read_text())
                   if (out / "metrics.json").exists() else None)
        runs[label] = {"command": "python " + shlex.join(
            [c if c != str(out) else f"{args.runs_dir}/{benchmark}/{label}" for c in cmd]),
            "metrics": metrics, "out": out,
            "failure": failure.read_text().strip() if failure.exists() else None}
    return runs


def cell(mean, ci, scale=1.0, digits=3):
    if mean is None:
        return "diverged"
    if abs(scale * mean) >= 1e3:       # finite but blown up on some tasks
        return f"{scale * mean:.1e} ± {scale * ci:.1e}"
    return f"{scale * mean:.{digits}f} ± {scale * ci:.{digits}f}"


def settings(config, benchmark):
    text = f"{config['inner_steps']} step{'s' * (config['inner_steps'] != 1)}, α={config['inner_lr']:g}"
    options = dict(config.get("algorithm_options") or [])
    text += "".join(f", {k}={v:g}" if isinstance(v, float) else f", {k}={v}"
                    for k, v in options.items())
    return text


def failed_settings(label, benchmark):
    args = (SINUSOID if benchmark == "sinusoid" else OMNIGLOT)[label]
    return " ".join(args) or "defaults"


def sinusoid_table(runs):
    rows = ["| algorithm | training settings | ms / meta-step | K=5, 1 step | K=5, 5 steps "
            "| K=5, 10 steps | K=10, 1 step | K=10, 5 steps | K=10, 10 steps |",
            "|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for name, run in runs.items():
        m = run["metrics"]
        if m is None:
            rows.append(f"| {name} | {failed_settings(name, 'sinusoid')}: "
                        f"{run['failure'] or 'no result'} | | | | | | | |")
            summary[name] = {"failed": run["failure"], "command": run["command"]}
            continue
        trained = m["config"]["inner_steps"] if algorithm_of(name) in LEARNED_RATES else None
        cells = [cell(m["maml"][k]["mse"][n], m["maml"][k]["ci95"][n])
                 + (" †" if trained is not None and n > trained else "")
                 for k in ("5", "10") for n in (1, 5, 10)]
        notes = [f"K={k}: {m['maml'][k]['diverged_tasks']} of {m['maml'][k]['tasks']} tasks "
                 f"diverged" for k in ("5", "10") if m["maml"][k]["diverged_tasks"]]
        steps = m["config"]["inner_steps"]
        if len(m["maml"]["5"]["mse"]) > 11 and steps > 10:     # meta-tested up to its steps
            notes.append("after its " + str(steps) + " trained steps: " + ", ".join(
                f"K={k} {cell(m['maml'][k]['mse'][steps], m['maml'][k]['ci95'][steps])}"
                for k in ("5", "10")))
        rows.append(f"| {name} | {settings(m['config'], 'sinusoid')}"
                    f"{' (' + '; '.join(notes) + ')' if notes else ''} | "
                    f"{m['ms_per_step']:.2f} | " + " | ".join(cells) + " |")
        summary[name] = {"settings": settings(m["config"], "sinusoid"),
                         "ms_per_step": m["ms_per_step"], "train_seconds": m["train_seconds"],
                         "mse": {k: m["maml"][k] for k in ("5", "10")},
                         "command": run["command"]}
    pre = next(r["metrics"] for r in runs.values() if r["metrics"])["pretrained"]
    rows.append("| pretrained baseline (no meta-learning) | plain regression | | " + " | ".join(
        cell(pre[k]["mse"][n], pre[k]["ci95"][n]) for k in ("5", "10") for n in (1, 5, 10))
        + " |")
    summary["pretrained"] = {"mse": {k: pre[k] for k in ("5", "10")}}
    return "\n".join(rows), summary


def omniglot_table(runs):
    rows = ["| algorithm | training settings | meta-steps in the budget | CPU s / wall s "
            "| CPU ms / meta-step | wall ms / meta-step | test accuracy, % (fine-tuning steps) |",
            "|---|---|---|---|---|---|---|"]
    summary = {}
    for name, run in runs.items():
        m = run["metrics"]
        if m is None:
            rows.append(f"| {name} | {failed_settings(name, 'omniglot')}: "
                        f"{run['failure'] or 'no result'} | | | | | |")
            summary[name] = {"failed": run["failure"], "command": run["command"]}
            continue
        acc = m["test_accuracy"]
        rows.append(f"| {name} | {settings(m['config'], 'omniglot')} | {m['meta_steps']:,} | "
                    f"{m.get('train_cpu_seconds', 0):.0f} / {m['train_seconds']:.0f} | "
                    f"{1e3 * m.get('train_cpu_seconds', 0) / m['meta_steps']:.0f} | "
                    f"{'—' if m['ms_per_step'] is None else format(m['ms_per_step'], '.0f')} | "
                    f"{cell(acc['mean'], acc['ci95'], 100, 2)} "
                    f"({acc['steps']}) |")
        summary[name] = {"settings": settings(m["config"], "omniglot"),
                         "meta_steps": m["meta_steps"], "ms_per_step": m["ms_per_step"],
                         "train_seconds": m["train_seconds"],
                         "train_cpu_seconds": m.get("train_cpu_seconds"), "accuracy": acc["mean"],
                         "ci95": acc["ci95"], "command": run["command"]}
    return "\n".join(rows), summary


def ship_sinusoid_params(runs):
    """θ (and learned rates) of every variant, one npz, for chapter 8's widget."""
    tree, rates, finetune_lr, made_by = {}, {}, {}, {}
    for label, run in runs.items():
        name = algorithm_of(label)
        if run["metrics"] is None or name in tree:     # the first setting that trained
            continue
        tree[name] = npz.load(run["out"] / "maml_params.npz")[0]
        made_by[name] = run["command"]
        config = run["metrics"]["config"]
        options = dict(config.get("algorithm_options") or [])
        # the α it was meta-tested with (learned rates: the α they started from)
        finetune_lr[name] = np.float64(options.get("eval_inner_lr", config["inner_lr"]))
        if (run["out"] / "maml_inner_lr.npz").exists():
            rates[name] = npz.load(run["out"] / "maml_inner_lr.npz")[0]
    npz.save(ROOT / "minimaml" / "data" / "family_sinusoid.npz",
             {"params": tree, "inner_lr": rates, "finetune_lr": finetune_lr})
    return made_by


def write_readme_block(name, text):
    """Replace the README's ``<!-- BEGIN name -->`` … ``<!-- END name -->`` block (it must
    exist: the README decides where the table goes)."""
    readme = ROOT / "README.md"
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    current = readme.read_text()
    if begin not in current:
        return
    head, rest = current.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{text.strip()}\n{end}{rest.split(end, 1)[1]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=("sinusoid", "omniglot"))
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=ALGORITHMS)
    parser.add_argument("--meta-steps", type=int, default=None,
                        help="sinusoid: 70,000 (the paper's); omniglot: the cap beside the "
                             "time budget, 60,000")
    parser.add_argument("--runs-dir", default="runs/family",
                        help="where each run writes (a finished run there is reused)")
    parser.add_argument("--minutes", type=float, default=4.0,
                        help="omniglot: CPU-minutes of training per variant (all threads)")
    parser.add_argument("--collect-only", action="store_true",
                        help="run nothing: write the tables from the finished runs (e.g. "
                             "after running variants in parallel with --algorithms)")
    parser.add_argument("--note", default="",
                        help="a sentence for the section's header (e.g. how the runs were "
                             "scheduled)")
    args = parser.parse_args(argv)
    if args.meta_steps is None:
        args.meta_steps = 70_000 if args.benchmark == "sinusoid" else 60_000
    load_before = os.getloadavg()
    start = time.perf_counter()
    runs = run_all(args.benchmark, args)
    hours = (time.perf_counter() - start) / 3600
    table, summary = (sinusoid_table if args.benchmark == "sinusoid" else omniglot_table)(runs)
    versions = next((r["metrics"]["versions"] for r in runs.values() if r["metrics"]), {})
    if args.benchmark == "sinusoid":
        intro = (f"The paper's sinusoid config (MLP 1-40-40-1, meta-batch 25, K = 10 + 10 in "
                 f"training, Adam 1e-3), {args.meta_steps:,} meta-steps for every variant, seed "
                 f"0. Meta-test: 600 fixed fresh tasks per K, each fine-tuned from θ on its K "
                 f"points the way it trained — plain SGD at its α (0.01; Reptile's "
                 f"eval_inner_lr; iMAML the 0.002 of its inner solve, without the regulariser, "
                 f"as the authors' code meta-tests), ANIL the head only, Meta-SGD and MAML++ "
                 f"with their learned rates — query MSE on 100 points, mean ± 95% CI. "
                 f"**†**: past the inner steps the learned rates were trained for (Meta-SGD 1, "
                 f"MAML++ 5); the last learned step's rates are repeated there, and nothing in "
                 f"training made them good for it: Meta-SGD's one-step rates diverge on some "
                 f"tasks from step 2 on. Read Meta-SGD at 1 step and MAML++ at 1 and 5. "
                 f"*diverged*: more than 10% of the tasks' MSE became non-finite by that step; "
                 f"the other cells average the tasks still finite at the last step shown (the "
                 f"settings column counts the ones left out). ANIL's K = 5 cells blow up "
                 f"because its head's support loss is a quadratic whose curvature exceeds 2/α "
                 f"on some tasks (chapter 8 computes it); `anil_finetune-lr-0.005` is the same "
                 f"training fine-tuned with half the step. MAML++ trains its rates with Adam "
                 f"at rate_meta_lr = 1e-4 (β·α/0.1: the paper's α starts at 0.1); at θ's β the "
                 f"same run diverged within 7,000 meta-steps (chapter 8 reproduces it). "
                 f"ms / meta-step: median over the 1,000-step chunks after the first "
                 f"(compilation), sampling included (MAML++: over the chunks of all its "
                 f"phases, some shorter where a phase ends and the first of each new length "
                 f"including its compilation).")
        shipped_from = ship_sinusoid_params(runs)
    else:
        intro = (f"Omniglot 5-way 1-shot (the paper's conv net, meta-batch 32, one query per "
                 f"class in training, Adam 1e-3, 1,200 training characters, seed 0), each "
                 f"variant trained for the same {args.minutes:g} CPU-minutes (`--max-cpu-"
                 f"minutes`: CPU time of all the process's threads, compilation included, "
                 f"evaluation not; training stops at the first 10-step chunk past the "
                 f"budget; wall time is longer on this shared machine). Test: 600 tasks of "
                 f"the 423 held-out characters, fine-tuned the way each variant trained (SGD "
                 f"at its α, 3 steps as in the paper, or as many as it trained with when it "
                 f"trained with more — in brackets —; learned rates; ANIL's head only), 15 "
                 f"queries per class, mean ± 95% CI. MAML++'s multi-step-loss weights anneal "
                 f"over the first 10% of the 60,000-step cap in stairs of 600 steps, so a run "
                 f"that stops before step 600 trains with equal weights throughout. "
                 f"CPU ms / meta-step: the budget's CPU time over the "
                 f"steps reached (compilation included; the fair cost on a shared machine); "
                 f"wall ms / meta-step: median over the 10-step chunks after the first, "
                 f"inflated by whatever else ran (—: the run's metrics were written by a "
                 f"call that resumed it and timed no chunk).")
    commands = "\n".join(f"- {name}: `{run['command']}`" for name, run in runs.items())
    text = (f"## The MAML family: {args.benchmark}\n\n"
            f"Machine: {machine_description()}.\n"
            f"Command: `nice -n 5 python benchmarks/family_results.py {args.benchmark}"
            f"{' --minutes %g' % args.minutes if args.benchmark == 'omniglot' else ''}` "
            f"({hours:.1f} h of runs in this call; runs already in {args.runs_dir}/ are "
            f"reused, not rerun; load average before "
            f"{' '.join(f'{x:.2f}' for x in load_before)}, after "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}: a shared 2-core machine, "
            f"so compare ms within this table only).{' ' + args.note if args.note else ''} Versions: "
            f"{', '.join(f'{k} {v}' for k, v in versions.items())}.\n\n{intro}\n\n{table}\n\n"
            f"The runs, one command each:\n{commands}\n")
    write_section(f"family_{args.benchmark}", text)
    write_readme_block(f"family_{args.benchmark}", (
        f"`nice -n 5 python benchmarks/family_results.py {args.benchmark}"
        f"{' --minutes %g' % args.minutes if args.benchmark == 'omniglot' else ''}` "
        f"(BENCHMARKS.md, \"The MAML family: {args.benchmark}\", has the settings, every "
        f"run's command, the machine and the versions):\n\n{table}"))
    (ROOT / "minimaml" / "data" / f"family_{args.benchmark}.json").write_text(
        json.dumps({"table": table, "results": summary, "machine": machine_description(),
                    "shipped_params_from": shipped_from if args.benchmark == "sinusoid" else None,
                    "section": f"BENCHMARKS.md, section 'The MAML family: {args.benchmark}'"},
                   indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
