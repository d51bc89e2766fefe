"""Meta-test a θ without training: ``python -m minimaml.omniglot evaluate``.

The same protocol as the training run's meta-test (:func:`.experiment.evaluate`): the
tasks are fixed by the seed (so a θ evaluated here scores what its training run
reported, on one machine), each is fine-tuned from θ with SGD at the paper's α, and
the queries go through the net in training-shaped groups.
"""
import dataclasses
import json
import pathlib
import sys
import time
from typing import Any, Callable

import numpy as np

from ..cli import CommandLine, Flag, run_flags
from ..evaluate import mean_ci95
from ..runs import RunFolder, check_memory, memory_limit, versions
from ..types import PyTree
from .data import DataUnavailable, Omniglot, load
from .experiment import _evaluate, paper_config, split_images
from .shipped import load_params, shipped_path
from .sizes import estimate_memory


def evaluate_params(params: PyTree, data: Omniglot, ways: int = 5, shots: int = 1, *,
                    eval_tasks: int = 600, eval_inner_steps: int | None = None,
                    seed: int = 0, conv: Callable | None = None) -> dict[str, Any]:
    """Meta-test ``params`` on N-way K-shot tasks from ``data``'s test characters.

    The paper's config for ``ways`` gives α and (unless ``eval_inner_steps`` is set)
    the fine-tuning steps; ``seed`` picks the tasks (the training run's seed gives its
    tasks). Returns the metrics that ``metrics.json`` holds: ``test_accuracy`` (mean,
    ci95, tasks, steps: after the last step), ``accuracy_by_step`` and
    ``ci95_by_step`` (after 0..steps), ``diverged_tasks`` (counted as wrong),
    ``eval_seconds``, ``config``, ``versions``.
    """
    *blocks, head = params
    overrides = {} if eval_inner_steps is None else {"eval_inner_steps": eval_inner_steps}
    config = paper_config(ways, shots, eval_tasks=eval_tasks, seed=seed,
                          filters=int(np.shape(head["w"])[0]), blocks=len(blocks), **overrides)
    if np.shape(head["w"])[-1] != ways:
        raise ValueError(f"params: the head has {np.shape(head['w'])[-1]} outputs; "
                         f"{ways}-way tasks need {ways}")
    _, test_images = split_images(data, config)
    start = time.perf_counter()
    accuracy, diverged = _evaluate(params, test_images, config, conv)
    seconds = time.perf_counter() - start
    mean, ci = mean_ci95(accuracy)
    return {"test_accuracy": {"mean": float(mean[-1]), "ci95": float(ci[-1]),
                              "tasks": config.eval_tasks, "steps": config.eval_inner_steps},
            "accuracy_by_step": [float(m) for m in mean],
            "ci95_by_step": [float(c) for c in ci],
            "diverged_tasks": diverged,
            "eval_seconds": round(seconds, 2),
            "config": dataclasses.asdict(config),
            "versions": versions()}


FLAGS = (
    Flag("--params", str, "params .npz (minimaml.npz.save) or a training checkpoint.npz "
         "(default: the shipped θ for --ways/--shots)", in_config=False),
    Flag("--data", str, "local directory, official .zip or .npz (default: "
         "$MINIMAML_OMNIGLOT_DIR, else download)", in_config=False),
    Flag("--out", str, "output folder for metrics.json (default: runs/omniglot_evaluate)",
         default="runs/omniglot_evaluate", field="out_dir", in_config=False),
    Flag("--ways", int, "N, classes per task; the head's width (default: 5)", short="-N",
         default=5),
    Flag("--shots", int, "K, examples per class in a support set (default: 1)", short="-K",
         default=1),
    Flag("--eval-tasks", int, "meta-test tasks (default: 600)", default=600),
    Flag("--eval-inner-steps", int, "SGD steps at meta-test (default: the paper's for "
         "--ways)"),
    Flag("--seed", int, "picks the test tasks (default: 0, the training runs' seed)",
         default=0),
    *run_flags("an evaluation"),
)

COMMAND_LINE = CommandLine(
    "python -m minimaml.omniglot evaluate",
    "Meta-test a θ without training: fine-tune it on fixed test tasks and write "
    "metrics.json. Defaults: the shipped 5-way 1-shot θ, the paper's α and test steps "
    "for --ways, 600 tasks.", FLAGS)


def evaluate_main(argv: list[str] | None = None) -> int:
    """``python -m minimaml.omniglot evaluate``; the exit status of
    :meth:`minimaml.cli.CommandLine.main` (0 done, 2 bad input or missing data)."""
    return COMMAND_LINE.main(_evaluate_command, argv)


def _evaluate_command(args) -> int:
    start = time.perf_counter()
    fields = COMMAND_LINE.config_fields(args)
    config = paper_config(**fields)          # the sizes, checked before any file is read
    memory_limit(args.memory_limit_gb)
    if args.params is not None:
        path = args.params
        try:
            params = load_params(path, args.ways)
        except ValueError as err:
            raise ValueError(f"--params: {err}") from None
    else:
        path = shipped_path(args.ways, args.shots)
        params = load_params(path, args.ways)
    with RunFolder(args.out, outputs=("metrics.json",)) as folder:
        try:
            data = load(args.data, progress=not args.no_progress)
        except (ValueError, FileNotFoundError) as err:
            if args.data is None or isinstance(err, DataUnavailable):
                raise
            raise type(err)(f"--data: {err}") from None
        *blocks, head = params
        sized = dataclasses.replace(config, filters=int(np.shape(head["w"])[0]),
                                    blocks=len(blocks))
        check_memory({"the meta-test": estimate_memory(sized, len(data.ids))["the meta-test"]},
                     args.memory_limit_gb)
        metrics = evaluate_params(params, data, args.ways, args.shots,
                                  eval_tasks=args.eval_tasks,
                                  eval_inner_steps=args.eval_inner_steps, seed=args.seed)
        metrics["params"] = str(path)
        metrics["total_seconds"] = round(time.perf_counter() - start, 2)
        folder.stage("metrics.json").write_text(json.dumps(metrics, indent=1))
        folder.commit()
    acc = metrics["test_accuracy"]
    out = pathlib.Path(args.out) / "metrics.json"
    print(f"{path}: test accuracy {100 * acc['mean']:.2f} ± {100 * acc['ci95']:.2f}% "
          f"({acc['tasks']} tasks, {args.ways}-way {args.shots}-shot, {acc['steps']} "
          f"steps; before adapting {100 * metrics['accuracy_by_step'][0]:.1f}%); "
          f"{metrics['total_seconds']:.1f} s in all, {metrics['eval_seconds']:.1f} s of "
          f"it evaluating; wrote {out}")
    if metrics["diverged_tasks"]:
        print(f"warning: fine-tuning diverged on {metrics['diverged_tasks']} of "
              f"{acc['tasks']} tasks; they count as wrong", file=sys.stderr)
    return 0
