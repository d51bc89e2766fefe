"""The paper's four Omniglot settings on this CPU: speed, projected 60,000-step time, and
what a budgeted run reaches, beside the paper's Table 1.

Three steps, each its own command, so the long runs can go one at a time in the
background (run them niced: the machine is shared):

    python benchmarks/omniglot_settings.py measure [--data DIR]
        s / meta-iteration of each setting (5-way 1/5-shot, 20-way 1/5-shot, paper
        hyperparameters, second order) through the CLI's path, as wall time and as
        this process's CPU time, and the projected time for 60,000 steps
        -> runs/omniglot_settings/speed.json

    python benchmarks/omniglot_settings.py run --ways 5 --shots 5 --max-minutes 60 \
        --out runs/omniglot_settings/5w5s [--data DIR] [--nice 10]
        runs ``python -m minimaml.omniglot`` (training then the 600-task meta-test) as a
        child process and records its wall time and CPU time (user + system, from the
        kernel's rusage of the child) in OUT/budget.json

    python benchmarks/omniglot_settings.py evaluate [--data DIR]
        times ``python -m minimaml.omniglot evaluate`` on the shipped θ (wall and CPU
        time of the whole command) -> BENCHMARKS.md section omniglot_evaluate

    python benchmarks/omniglot_settings.py record [--runs runs/omniglot_settings]
        writes the section ``omniglot_settings`` of BENCHMARKS.md from speed.json and
        every run's metrics.json + budget.json, and prints the table the README quotes

``--max-minutes`` is the CLI's training budget in wall time (compilation included,
evaluation excluded); on a loaded machine the CPU time shows how much work it bought.
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

from benchmarks.report import machine_description, write_section  # noqa: E402

SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))
PAPER = {(5, 1): "98.7 ± 0.4", (5, 5): "99.9 ± 0.1", (20, 1): "95.8 ± 0.3",
         (20, 5): "98.9 ± 0.2"}
PAPER_STEPS = 60_000
DEFAULT_DIR = ROOT / "runs" / "omniglot_settings"


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def seconds_per_iteration(config, train_images, chunk: int, chunks: int) -> dict:
    """Wall and process-CPU seconds per meta-iteration, median over ``chunks`` timed
    chunks of ``chunk`` steps after a compile chunk, via :func:`minimaml.train.meta_train`
    with the CLI's sampler and loss."""
    import jax
    import numpy as np
    from minimaml import omniglot as og
    from minimaml.train import meta_train

    _, loss_fn = og.classifier()
    sampler = og.task_sampler(train_images, config.meta_batch, config.ways, config.shots,
                              config.queries)
    marks = [(time.perf_counter(), time.process_time())]
    meta_train(og.init_params(config), loss_fn, sampler, jax.random.key(0),
               meta_steps=chunk * (chunks + 1), inner_lr=config.inner_lr,
               inner_steps=config.inner_steps, meta_lr=config.meta_lr, steps_per_call=chunk,
               on_chunk=lambda *_: marks.append((time.perf_counter(), time.process_time())))
    wall, cpu = (np.diff([m[i] for m in marks]) / chunk for i in (0, 1))
    return {"compile_chunk_s": round(float(wall[0] * chunk), 1),
            "wall_s_per_step": round(float(np.median(wall[1:])), 3),
            "cpu_s_per_step": round(float(np.median(cpu[1:])), 3),
            "chunk": chunk, "chunks": chunks}


def measure(args) -> dict:
    """Time the chosen settings; merge them into speed.json (other settings kept)."""
    from minimaml import omniglot as og
    data = og.load(args.data, progress=False)
    out = pathlib.Path(args.runs)
    speed_path = out / "speed.json"
    old = json.loads(speed_path.read_text()) if speed_path.exists() else {"settings": []}
    chosen = [tuple(int(v) for v in s.split("x")) for s in args.settings]
    kept = [s for s in old["settings"] if (s["ways"], s["shots"]) not in chosen]
    for s in kept:  # speed.json files from before loads were recorded per setting
        s.setdefault("load_before", old.get("load_before", "?"))
        s.setdefault("load_after", old.get("load_after", "?"))
    measured = []
    for ways, shots in chosen:
        config = og.paper_config(ways, shots)
        train_images, _ = og.split_images(data, config)
        chunk = args.chunk if ways == 5 else max(1, args.chunk // 4)
        load_before = load_average()
        r = seconds_per_iteration(config, train_images, chunk, args.chunks)
        r.update(ways=ways, shots=shots, meta_batch=config.meta_batch,
                 inner_steps=config.inner_steps, inner_lr=config.inner_lr,
                 projected_hours_wall=round(PAPER_STEPS * r["wall_s_per_step"] / 3600, 1),
                 projected_hours_cpu=round(PAPER_STEPS * r["cpu_s_per_step"] / 3600, 1),
                 load_before=load_before, load_after=load_average(),
                 machine=machine_description(),
                 measured=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        measured.append(r)
        print(json.dumps(r), flush=True)
    order = {s: i for i, s in enumerate(SETTINGS)}
    settings = sorted(kept + measured, key=lambda s: order.get((s["ways"], s["shots"]), 99))
    result = {"machine": machine_description(), "settings": settings}
    out.mkdir(parents=True, exist_ok=True)
    speed_path.write_text(json.dumps(result, indent=1))
    return result


def cli_command(ways: int, shots: int, max_minutes: float, out: str, data: str | None,
                eval_every: int, meta_steps: int | None = None,
                steps_per_call: int | None = None) -> list[str]:
    command = ["-m", "minimaml.omniglot", "--ways", str(ways), "--shots", str(shots),
               "--out", str(out), "--max-minutes", f"{max_minutes:g}", "--no-progress"]
    if eval_every:
        command += ["--eval-every", str(eval_every)]
    if meta_steps is not None:
        command += ["--meta-steps", str(meta_steps)]
    if steps_per_call is not None:
        command += ["--steps-per-call", str(steps_per_call)]
    if data is not None:
        command += ["--data", str(data)]
    return command


def run(args) -> dict:
    """Run the CLI as a (niced) child; record its wall and CPU time beside its outputs."""
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = cli_command(args.ways, args.shots, args.max_minutes, str(out), args.data,
                          args.eval_every, args.meta_steps, args.steps_per_call)
    shown = "python " + " ".join(cli_command(args.ways, args.shots, args.max_minutes,
                                             str(out), None, args.eval_every, args.meta_steps,
                                             args.steps_per_call))
    argv = [sys.executable, *command]
    if args.nice:
        argv = ["nice", "-n", str(args.nice), *argv]
    budget = {"command": shown, "nice": args.nice, "load_before": load_average(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    start = time.perf_counter()
    with open(out / "cli.log", "a") as log:
        child = subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    budget.update(returncode=os.waitstatus_to_exitcode(status),
                  wall_seconds=round(time.perf_counter() - start, 1),
                  cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1),
                  load_after=load_average(), machine=machine_description())
    (out / "budget.json").write_text(json.dumps(budget, indent=1))
    print(json.dumps(budget), flush=True)
    return budget


def time_evaluate(args) -> dict:
    """``python -m minimaml.omniglot evaluate`` on the shipped θ (600 tasks) as a child:
    its wall and CPU time and what it printed -> BENCHMARKS.md section omniglot_evaluate."""
    out = pathlib.Path(args.out)
    argv = [sys.executable, "-m", "minimaml.omniglot", "evaluate", "--out", str(out),
            "--no-progress"] + (["--data", args.data] if args.data else [])
    load_before, start = load_average(), time.perf_counter()
    child = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    printed = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall, cpu = time.perf_counter() - start, usage.ru_utime + usage.ru_stime
    metrics = json.loads((out / "metrics.json").read_text())
    acc = metrics["test_accuracy"]
    text = "\n".join([
        "## Omniglot: evaluating the shipped θ (`python -m minimaml.omniglot evaluate`)", "",
        f"Machine: {machine_description()}; load average {load_before} before, "
        f"{load_average()} after (a shared machine).", "",
        "Command: `python -m minimaml.omniglot evaluate --out DIR --no-progress` (the "
        "shipped 5-way 1-shot θ, 600 test tasks, 3 SGD steps at α = 0.4; run by "
        "`python benchmarks/omniglot_settings.py evaluate`).", "",
        f"| exit status | wall time, whole command | CPU time (user + system) | of it "
        f"evaluating (wall, compilation included) | test accuracy |",
        "|---|---|---|---|---|",
        f"| {os.waitstatus_to_exitcode(status)} | {wall:.1f} s | {cpu:.1f} s | "
        f"{metrics['eval_seconds']:.1f} s | {100 * acc['mean']:.2f} ± {100 * acc['ci95']:.2f}% |",
        "", "It printed:", "", "```", printed.strip(), "```"])
    write_section("omniglot_evaluate", text)
    print(text)
    return {"wall_seconds": wall, "cpu_seconds": cpu}


def _row_for(run_dir: pathlib.Path) -> dict | None:
    """A finished run (metrics.json + budget.json), or a run stopped before its meta-test
    whose last checkpoint was evaluated with ``python -m minimaml.omniglot evaluate
    --params RUN/checkpoint.npz --out RUN/evaluate`` (its CPU time unknown)."""
    metrics, budget = run_dir / "metrics.json", run_dir / "budget.json"
    if metrics.exists() and budget.exists():
        m, b = json.loads(metrics.read_text()), json.loads(budget.read_text())
        c = m["config"]
        return {"ways": c["ways"], "shots": c["shots"], "steps": m["meta_steps"],
                "train_minutes": m["train_seconds"] / 60,
                "wall_minutes": b["wall_seconds"] / 60, "cpu_minutes": b["cpu_seconds"] / 60,
                "accuracy": m["test_accuracy"]["mean"], "ci95": m["test_accuracy"]["ci95"],
                "eval_steps": c["eval_inner_steps"], "command": b["command"],
                "load": f"{b['load_before']} → {b['load_after']}",
                "budget_minutes": c["max_train_seconds"] / 60, "note": ""}
    evaluated, checkpoint = run_dir / "evaluate" / "metrics.json", run_dir / "checkpoint.npz"
    if not (evaluated.exists() and checkpoint.exists()):
        return None
    import numpy as np
    with np.load(checkpoint, allow_pickle=False) as data:   # today's format or the earlier
        prefix = "_" if "_step" in data.files else ""
        step, state = int(data[prefix + "step"]), json.loads(str(data[prefix + "state"]))
    m, c = json.loads(evaluated.read_text()), state["config"]
    typed = run_dir / "command.txt"      # the command as typed, when it differs from ours
    command = typed.read_text().strip() if typed.exists() else "python " + " ".join(
        cli_command(c["ways"], c["shots"], c["max_train_seconds"] / 60, str(run_dir), None,
                    c["eval_every"]))
    return {"ways": c["ways"], "shots": c["shots"], "steps": step,
            "train_minutes": state["train_seconds"] / 60, "wall_minutes": None,
            "cpu_minutes": None, "accuracy": m["test_accuracy"]["mean"],
            "ci95": m["test_accuracy"]["ci95"], "eval_steps": m["test_accuracy"]["steps"],
            "command": command, "load": "unrecorded",
            "budget_minutes": c["max_train_seconds"] / 60,
            "note": f"stopped before its budget ran out; its last "
                    f"checkpoint (step {step:,}) meta-tested by `python -m minimaml.omniglot "
                    f"evaluate --ways {c['ways']} --shots {c['shots']} --params "
                    f"{_shown_path(m['params'])}`"}


def _shown_path(path: str) -> str:
    try:
        return str(pathlib.Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def table(rows: dict, speed: dict | None) -> list[str]:
    """The four-setting table: paper, what the budgeted run reached, and the speed."""
    per_step = {(s["ways"], s["shots"]): s for s in (speed or {}).get("settings", [])}
    lines = ["| setting | paper (60,000 steps) | here: test accuracy | meta-steps | "
             "training wall time (budget) | process CPU time | s / step, wall (CPU) | "
             "60,000 steps projected, h wall (CPU) | command |",
             "|---|---|---|---|---|---|---|---|---|"]
    for ways, shots in SETTINGS:
        r, s = rows.get((ways, shots)), per_step.get((ways, shots))
        speed_cells = (f"{s['wall_s_per_step']} ({s['cpu_s_per_step']}) | "
                       f"{s['projected_hours_wall']} ({s['projected_hours_cpu']})"
                       if s else "— | —")
        if r is None:
            lines.append(f"| {ways}-way {shots}-shot | {PAPER[(ways, shots)]} | not run | — | "
                         f"— | — | {speed_cells} | — |")
            continue
        lines.append(
            f"| {ways}-way {shots}-shot | {PAPER[(ways, shots)]} | "
            f"**{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}** | {r['steps']:,} | "
            f"{r['train_minutes']:.0f} min ({r['budget_minutes']:g} min) | "
            + (f"{r['cpu_minutes']:.0f} min" if r["cpu_minutes"] is not None else "—")
            + f" | {speed_cells} | `{r['command']}`" + (f" ({r['note']})" if r["note"] else "")
            + " |")
    return lines


def record(args) -> str:
    runs = pathlib.Path(args.runs)
    speed_path = runs / "speed.json"
    speed = json.loads(speed_path.read_text()) if speed_path.exists() else None
    rows = {}
    for run_dir in sorted(p for p in runs.iterdir() if p.is_dir()):
        row = _row_for(run_dir)
        if row is not None:
            rows[(row["ways"], row["shots"])] = row
    lines = ["## Omniglot: the paper's four settings on the CPU", "",
             f"Machine: {speed['machine'] if speed else machine_description()}.",
             "Paper hyperparameters, second order: 5-way meta-batch 32, 1 inner step at "
             "α = 0.4 (3 at test); 20-way meta-batch 16, 5 inner steps at α = 0.1 (5 at "
             "test); Adam 1e-3; 600 test tasks from the 423 held-out characters, 15 "
             "queries per class, mean ± 95% CI over tasks. Each row is one run of the "
             "command in its last column (through `python benchmarks/omniglot_settings.py "
             "run`, which records the child's CPU time), stopped by its `--max-minutes` "
             "training budget (wall time, compilation included, evaluation excluded; "
             "checked after each chunk of `--steps-per-call` steps, 100 unless the "
             "command says otherwise, so a slow setting overshoots it by up to a chunk) "
             "long before the paper's 60,000 steps. The machine is shared (2 cores), so "
             "wall time buys fewer steps under load: the CPU-time column (user + system of "
             "the whole process, evaluations and data loading included) and the step "
             "count say how much work each run got.", ""]
    lines += table(rows, speed)
    if speed:
        lines += ["", f"Speed: `python benchmarks/omniglot_settings.py measure` (median of "
                  f"timed chunks after a compile chunk). Load averages while timing "
                  f"(before → after): " + "; ".join(
                      f"{s['ways']}-way {s['shots']}-shot "
                      f"{s.get('load_before', speed.get('load_before', '?'))} → "
                      f"{s.get('load_after', speed.get('load_after', '?'))} "
                      f"({s.get('measured', 'earlier')})"
                      for s in speed["settings"]) + ". Runs' load "
                  f"averages (before → after): " + "; ".join(
                      f"{w}-way {k}-shot {r['load']}" for (w, k), r in rows.items()) + "."]
    text = "\n".join(lines)
    write_section("omniglot_settings", text)
    write_results(rows, speed, pathlib.Path(args.results))
    print(text)
    print("\nFor the README:\n\n" + "\n".join(readme_table(rows, speed)))
    return text


def readme_table(rows: dict, speed: dict | None) -> list[str]:
    """The README's short form of the table."""
    per_step = {(s["ways"], s["shots"]): s for s in (speed or {}).get("settings", [])}
    lines = ["| setting | paper, 60,000 steps | here: test accuracy, % | meta-steps | "
             "training budget (used) | CPU s / step | 60,000 steps, CPU hours |",
             "|---|---|---|---|---|---|---|"]
    for ways, shots in SETTINGS:
        r, s = rows.get((ways, shots)), per_step.get((ways, shots))
        run = (f"**{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}** | {r['steps']:,} | "
               f"{r['budget_minutes']:g} min ({r['train_minutes']:.0f} min)") if r \
            else "not run | — | —"
        fast = f"{s['cpu_s_per_step']} | {s['projected_hours_cpu']:g}" if s else "— | —"
        lines.append(f"| {ways}-way {shots}-shot | {PAPER[(ways, shots)]} | {run} | {fast} |")
    return lines


def write_results(rows: dict, speed: dict | None, path: pathlib.Path) -> None:
    """The table as data, for chapter 6 (``minimaml/data/omniglot_settings.json``)."""
    per_step = {(s["ways"], s["shots"]): s for s in (speed or {}).get("settings", [])}
    settings = []
    for ways, shots in SETTINGS:
        r, s = rows.get((ways, shots)), per_step.get((ways, shots))
        settings.append({
            "ways": ways, "shots": shots, "paper": PAPER[(ways, shots)],
            "run": None if r is None else {k: r[k] for k in (
                "accuracy", "ci95", "steps", "train_minutes", "cpu_minutes",
                "budget_minutes", "command", "load", "note")},
            "speed": None if s is None else {k: s.get(k) for k in (
                "wall_s_per_step", "cpu_s_per_step", "projected_hours_wall",
                "projected_hours_cpu", "load_before", "load_after", "measured")}})
    result = {"machine": speed["machine"] if speed else machine_description(),
              "paper_steps": PAPER_STEPS, "written": time.strftime("%Y-%m-%d"),
              "how": "python benchmarks/omniglot_settings.py record (BENCHMARKS.md, "
                     "section omniglot_settings)", "settings": settings}
    path.write_text(json.dumps(result, indent=1) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="s / meta-iteration of the four settings")
    m.add_argument("--data", default=None)
    m.add_argument("--chunk", type=int, default=8, help="5-way steps per timed chunk "
                   "(20-way: a quarter)")
    m.add_argument("--chunks", type=int, default=2)
    m.add_argument("--runs", default=str(DEFAULT_DIR))
    m.add_argument("--settings", nargs="+", default=[f"{w}x{k}" for w, k in SETTINGS],
                   help="WAYSxSHOTS settings to time (default: all four)")
    r = sub.add_parser("run", help="one budgeted CLI run, its wall and CPU time recorded")
    r.add_argument("--ways", type=int, required=True)
    r.add_argument("--shots", type=int, required=True)
    r.add_argument("--max-minutes", type=float, required=True)
    r.add_argument("--meta-steps", type=int, default=None)
    r.add_argument("--steps-per-call", type=int, default=None,
                   help="the CLI checks its time budget after each such chunk")
    r.add_argument("--eval-every", type=int, default=0)
    r.add_argument("--out", required=True)
    r.add_argument("--data", default=None)
    r.add_argument("--nice", type=int, default=10)
    e = sub.add_parser("evaluate", help="time the evaluate command on the shipped θ")
    e.add_argument("--out", default=str(DEFAULT_DIR / "evaluate_shipped"))
    e.add_argument("--data", default=None)
    c = sub.add_parser("record", help="write the BENCHMARKS.md section")
    c.add_argument("--runs", default=str(DEFAULT_DIR))
    c.add_argument("--results", default=str(ROOT / "minimaml" / "data" /
                                            "omniglot_settings.json"),
                   help="the table as JSON, for chapter 6")
    args = p.parse_args(argv)
    {"measure": measure, "run": run, "record": record,
     "evaluate": time_evaluate}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
