"""``make mutants``: a seeded sample of mutants of minimaml/, each run against the fast tests.

The mutation tool is cosmic-ray (its operators make the mutants and put them in the
files; it runs each mutant's tests in a fresh process, so nothing compiled for one
mutant is reused for another, as it would be in a forked runner). Everything happens in
a copy of the repository under ``--out`` (default ``runs/mutants``): the working tree is
never touched. Mutations inside type annotations are left out (they change no behaviour).

Per group of modules, a seeded random sample of its mutants is run, core modules first,
each with ``pytest -x -m "not slow and not browser"`` over the test files that exercise
that group (``GROUPS``; any test that fails kills the mutant, a run past the time limit
counts as killed too). A JAX persistent compilation cache under ``--out`` is shared by
all runs: it is keyed on the compiled program, so a mutant that changes what is computed
compiles afresh and one that does not reuses the unmutated compilation. Results are
appended to ``results.jsonl`` as they come, so a stopped run resumes where it was (same
seed and sizes); ``report.md`` holds the score per group (with a 95% interval for the
sampling) and every surviving mutant's diff.

Usage: ``python scripts/mutants.py [--budget-minutes 75] [--seed 0] [--sample core=120 ...]``.
"""
import argparse
import ast
import datetime
import json
import math
import os
import pathlib
import random
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAST = 'not slow and not browser'
ORACLE = "tests/test_oracles.py::test_"
LINEAR = [ORACLE + "maml_objective_and_meta_gradient_on_a_linear_model_in_closed_form",
          ORACLE + "inner_loop_trajectory_on_a_linear_model_in_closed_form"]
LOSSES = [ORACLE + "losses_by_hand"]
MLP = [ORACLE + "meta_gradient_of_an_mlp_against_the_explicit_chain_rule"]
TRAINING = [ORACLE + "one_sgd_step_of_pretraining_by_hand",
            ORACLE + "two_default_adam_steps_by_hand",
            ORACLE + "the_objectives_as_jit_arguments_are_second_order_maml_and_the_plain_loss",
            ORACLE + "each_step_draws_its_tasks_from_fold_in_key_step"]
CONVERGENCE = [ORACLE + "pretraining_converges_to_the_analytic_optimum",
               ORACLE + "maml_training_loss_falls_below_what_no_adaptation_can_reach"]
NETS = ["tests/test_nets.py",
        "tests/test_omniglot.py::test_im2col_matches_native_conv",
        "tests/test_omniglot.py::test_conv_net_formulations_agree_under_vmap",
        "tests/test_omniglot.py::test_batch_norm_normalises_each_channel_over_the_batch_and_positions",
        "tests/test_omniglot.py::test_conv_net_predictions_depend_on_the_batch_symmetrically"]
# The tests of test_family.py that drive maml.py's generalised inner loop (rates per tensor
# and per step, masks, per-step query weights) and train.py's schedules; the rest of that
# file (the recipes themselves) is the family group's.
INNER_LOOP = ["tests/test_family.py::test_" + name for name in (
    "anil_meta_gradient_matches_finite_differences",
    "per_tensor_and_per_entry_rates_meta_gradient_matches_finite_differences",
    "metasgd_meta_gradient_in_theta_and_alpha_matches_finite_differences",
    "mamlpp_second_order_meta_gradient_matches_finite_differences",
    "multi_step_loss_is_the_weighted_sum_of_the_query_loss_after_each_step",
    "metasgd_with_equal_rates_is_maml", "lslr_with_equal_rates_and_last_step_weight_is_maml",
    "anil_adapting_everything_is_maml_bitwise", "traced_scalar_rate_gives_maml_to_rounding",
    "anil_inner_loop_never_differentiates_the_body", "mask_as_predicate_equals_mask_as_pytree",
    "masked_trajectory_keeps_frozen_params_at_theta", "per_step_rates_are_used_in_order",
    "a_schedule_of_one_objective_is_the_plain_run_bitwise",
    "a_schedule_may_switch_after_one_step",
    "rate_meta_lr_sets_the_size_of_adams_first_step_on_the_rates",
    "schedule_stops_when_on_chunk_says_so", "bad_inner_lr", "bad_adapt",
    "bad_query_weights", "bad_schedule")]
# The fast tests that the core modules' mutants run against (issue 17: under 2 minutes;
# 125 s on an idle machine, TESTING.md). test_boundaries holds the tests written for
# earlier survivors; test_devices' fast tests take the sharded paths of train and evaluate
# on one device, and the uneven split's rule.
CORE_TESTS = [*LINEAR, *LOSSES, *TRAINING, *MLP, *CONVERGENCE, "tests/test_maml.py",
              "tests/test_train.py", *NETS, "tests/test_boundaries.py", *INNER_LOOP,
              "tests/test_devices.py"]
# Tests that run first for a module's mutants (the rest of its group's tests follow), so
# that a mutant dies in the tests most likely to see it, before the others compile.
FIRST = {
    "maml": [*LINEAR, *MLP, "tests/test_maml.py"],
    "train": [*TRAINING, "tests/test_train.py"],
    "evaluate": ["tests/test_train.py", "tests/test_devices.py"],
    "losses": [*LOSSES, *LINEAR],
    "nets": NETS,
    "family/algorithms": ["tests/test_family.py"],
    "family/imaml": ["tests/test_family.py"],
    "family/objectives": ["tests/test_family.py"],
}
# group: (modules, tests run against their mutants, default sample size)
GROUPS = {
    "core": (["maml", "train", "evaluate", "losses", "nets"], CORE_TESTS, 100),
    "family": (["family/algorithms", "family/imaml", "family/objectives"],
               ["tests/test_family.py", *LINEAR], 20),
    "widgets": (["widgets/sinusoid_adaptation", "widgets/canvas", "widgets/playground"],
                [ORACLE + "each_playground_curve_is_the_theta_its_label_names",
                 "tests/test_widgets.py"], 20),
    "omniglot": (["omniglot/data", "omniglot/tasks", "omniglot/model", "omniglot/experiment",
                  "omniglot/checkpoint", "omniglot/plots", "omniglot/cli"],
                 [ORACLE + "omniglot_meta_test_sees_only_unseen_characters_for_eval_inner_steps",
                  "tests/test_omniglot.py"], 20),
    "sinusoid": (["sinusoid/tasks", "sinusoid/experiment", "sinusoid/plots", "sinusoid/cli"],
                 [ORACLE + "pretraining_converges_to_the_analytic_optimum",
                  ORACLE + "maml_training_loss_falls_below_what_no_adaptation_can_reach",
                  "tests/test_sinusoid.py"], 20),
    # not part of the target; `--sample "core, other"=10` runs a few
    "core, other": (["checks", "tasks", "npz", "progress", "plots", "runs"],
                    ["tests/test_checks.py", "tests/test_oracles.py", "tests/test_maml.py",
                     "tests/test_train.py", "tests/test_nets.py", "tests/test_sinusoid.py",
                     "tests/test_omniglot.py"], 0),
}


def annotation_lines(path):
    """(line, col) spans of the type annotations in ``path``."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        notes = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            notes.append(node.returns)
        if isinstance(node, ast.arg) and node.annotation:
            notes.append(node.annotation)
        if isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        spans += [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in notes]
    return spans


def mutants_of(path):
    """cosmic-ray's work items for one module, less those inside annotations."""
    from cosmic_ray.commands.init import _all_work_items
    spans = annotation_lines(path)
    items = []
    for item in _all_work_items([path], {}):
        (mutation,) = item.mutations
        start = tuple(mutation.start_pos)
        if not any(lo <= start < hi for lo, hi in spans):
            items.append(mutation)
    return items


def copy_tree(work):
    """The files the tests need, copied from the working tree into ``work``."""
    if work.exists():
        shutil.rmtree(work)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for name in ("minimaml", "tests", "benchmarks"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, work / name)


def test_command(tests):
    return (f'{sys.executable} -m pytest -x -q -p no:cacheprovider -p no:randomly '
            f'--timeout=0 -m "{FAST}" ' + " ".join(tests))


def wilson(killed, n, z=1.96):
    """95% Wilson interval of the kill fraction."""
    if n == 0:
        return float("nan"), float("nan")
    p = killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "mutants"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-minutes", type=float, default=75.0,
                        help="start no new mutant after this long (the report says how many ran)")
    parser.add_argument("--sample", nargs="*", default=[],
                        help="group=size overrides, e.g. core=200 widgets=0")
    parser.add_argument("--groups", nargs="*", default=list(GROUPS), choices=list(GROUPS))
    parser.add_argument("--only", nargs="*", choices=list(GROUPS),
                        help="draw the samples of all --groups as usual but run only these "
                             "(to split one study over several processes, each with its "
                             "own --out; merge their results.jsonl and rerun with "
                             "--budget-minutes 0 for one report)")
    parser.add_argument("--recheck", action="store_true",
                        help="after the sample, run its surviving mutants again against the "
                             "tests as they are now (after tests were added to kill them)")
    args = parser.parse_args(argv)
    sizes = {name: GROUPS[name][2] for name in args.groups}
    for entry in args.sample:
        name, _, size = entry.partition("=")
        if name not in sizes or not size.isdigit():
            parser.error(f"--sample takes group=size with a group of {list(sizes)}; got {entry!r}")
        sizes[name] = int(size)

    out = pathlib.Path(args.out).resolve()
    work = out / "work"
    out.mkdir(parents=True, exist_ok=True)
    if args.budget_minutes > 0 or args.recheck:
        copy_tree(work)
        os.chdir(work)
    else:                   # only the report: read the modules, run nothing
        os.chdir(ROOT)
    env = os.environ
    env["PYTHONPATH"] = str(work)
    env["JAX_COMPILATION_CACHE_DIR"] = str(out / "jax-cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"

    # The sample: per group, a seeded draw from all its mutants (fixed by seed and size).
    plan = []
    rng = random.Random(args.seed)
    for name in args.groups:
        if not sizes[name]:
            continue
        modules, tests, _ = GROUPS[name]
        tests = list(dict.fromkeys(t for t in tests if (work / t.split("::")[0]).exists()))
        population = [m for module in modules
                      for m in mutants_of(pathlib.Path("minimaml") / f"{module}.py")]
        chosen = rng.sample(population, min(sizes[name], len(population)))
        plan.append((name, tests, len(population), chosen))
        print(f"{name}: {len(chosen)} of {len(population)} mutants, tests: {' '.join(tests)}",
              flush=True)

    from cosmic_ray.testing import run_tests
    results_path = out / "results.jsonl"
    done = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            row = json.loads(line)
            done[row["id"]] = row
    baseline_path = out / "baseline.json"
    baselines = json.loads(baseline_path.read_text()) if baseline_path.exists() else {}
    running = [entry for entry in plan if args.only is None or entry[0] in args.only]
    for name, tests, _, _ in running:
        key = name
        if key not in baselines and (args.budget_minutes > 0 or args.recheck):
            start = time.perf_counter()
            outcome, output = run_tests(test_command(tests), timeout=3600)
            baselines[key] = time.perf_counter() - start
            if outcome.value != "survived":
                sys.exit(f"the unmutated tests of {name!r} fail; fix them first:\n{output[-3000:]}")
            baseline_path.write_text(json.dumps(baselines, indent=1))
            print(f"{name}: unmutated tests pass in {baselines[key]:.0f} s", flush=True)

    start = time.perf_counter()
    stopped = False
    with results_path.open("a") as log:
        for name, tests, _, chosen in running:
            if args.budget_minutes <= 0:
                break
            timeout = 3 * baselines[name] + 60
            for mutation in chosen:
                ident = (f"{mutation.module_path}:{mutation.operator_name}:"
                         f"{mutation.occurrence}")
                if ident in done:
                    continue
                if time.perf_counter() - start > 60 * args.budget_minutes:
                    stopped = True
                    break
                row = run_mutant(mutation, name, tests, timeout)
                row["id"] = ident
                done[ident] = row
                log.write(json.dumps(row) + "\n")
                log.flush()
                print(f"[{len(done)}] {name} {ident} line {row['line']}: {row['outcome']} "
                      f"({row['seconds']} s)", flush=True)
            if stopped:
                break
        if args.recheck:
            for name, tests, _, chosen in running:
                for mutation in chosen:
                    ident = (f"{mutation.module_path}:{mutation.operator_name}:"
                             f"{mutation.occurrence}")
                    if done.get(ident, {}).get("outcome") != "survived":
                        continue
                    again = run_mutant(mutation, name, tests, 3 * baselines[name] + 60)
                    done[ident] = {**done[ident], "recheck": again["outcome"],
                                   "recheck_date": again["date"]}
                    log.write(json.dumps(done[ident]) + "\n")
                    log.flush()
                    print(f"recheck {ident} line {again['line']}: {again['outcome']}",
                          flush=True)
    report = write_report(out, plan, done, args, stopped)
    print(report)


def run_mutant(mutation, group, tests, timeout):
    """Apply one mutation in the copy, run its tests (its module's own first), restore."""
    from cosmic_ray.mutating import mutate_and_test
    t0 = time.perf_counter()
    module = pathlib.Path(mutation.module_path).with_suffix("").as_posix()
    first = FIRST.get(module.removeprefix("minimaml/"), [])
    ordered = list(dict.fromkeys(first + tests))
    result = mutate_and_test([mutation], test_command(ordered), timeout)
    return {"group": group, "module": str(mutation.module_path),
            "line": mutation.start_pos[0], "operator": mutation.operator_name,
            "outcome": result.test_outcome.value if result.test_outcome else
            result.worker_outcome.value,
            "timeout": result.output == "timeout",
            "seconds": round(time.perf_counter() - t0, 1),
            "diff": result.diff or "", "date": datetime.date.today().isoformat()}


def write_report(out, plan, done, args, stopped):
    lines = [f"# Mutation testing report ({datetime.date.today().isoformat()})", "",
             f"Command: `python scripts/mutants.py --seed {args.seed} --budget-minutes "
             f"{args.budget_minutes:g}" + (f" --sample {' '.join(args.sample)}" if args.sample
                                           else "") + "`" + (" (stopped by the budget)"
                                                              if stopped else ""), "",
             "| group | mutants (all) | sampled | run | killed | of which by time-out | "
             "survived | not testable | killed / run (95% interval) | survivors killed "
             "on recheck | killed / run after recheck |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    survivors = []
    for name, _, population, chosen in plan:
        ids = {f"{m.module_path}:{m.operator_name}:{m.occurrence}" for m in chosen}
        rows = [done[i] for i in ids if i in done]
        killed = [r for r in rows if r["outcome"] == "killed"]
        survived = [r for r in rows if r["outcome"] == "survived"]
        other = len(rows) - len(killed) - len(survived)
        n = len(killed) + len(survived)
        lo, hi = wilson(len(killed), n)
        score = f"{100 * len(killed) / n:.1f}% ({100 * lo:.0f}-{100 * hi:.0f}%)" if n else "-"
        rechecked = [r for r in survived if r.get("recheck") == "killed"]
        after = (f"{100 * (len(killed) + len(rechecked)) / n:.1f}%" if n and
                 any("recheck" in r for r in survived) else "-")
        lines.append(f"| {name} | {population} | {len(chosen)} | {len(rows)} | {len(killed)} | "
                     f"{sum(r['timeout'] for r in killed)} | {len(survived)} | {other} | "
                     f"{score} | {len(rechecked)} | {after} |")
        survivors += sorted(survived, key=lambda r: (r["module"], r["line"]))
    lines += ["", "## Surviving mutants", ""]
    for r in survivors:
        note = f", killed on recheck {r['recheck_date']}" if r.get("recheck") == "killed" else ""
        lines += [f"### {r['module']}:{r['line']} ({r['operator']}, {r['group']}{note})", "",
                  "```diff", r["diff"].strip(), "```", ""]
    report = "\n".join(lines)
    (out / "report.md").write_text(report)
    return report


if __name__ == "__main__":
    main()
