"""Meta-test a θ without training: ``python -m minimaml.omniglot evaluate``.

The same protocol as the training run's meta-test (:func:`.experiment.evaluate`): the
tasks are fixed by the seed (so a θ evaluated here scores what its training run
reported, on one machine), each is fine-tuned from θ with SGD at the paper's α, and
the queries go through the net in training-shaped groups.
"""
import argparse
import dataclasses
import json
import pathlib
import sys
import time
from typing import Any, Callable

import numpy as np

from .. import npz
from ..evaluate import mean_ci95
from ..runs import versions
from ..types import PyTree
from .data import Omniglot, load
from .experiment import evaluate, paper_config, split_images
from .shipped import load_params, shipped_path


def evaluate_params(params: PyTree, data: Omniglot, ways: int = 5, shots: int = 1, *,
                    eval_tasks: int = 600, eval_inner_steps: int | None = None,
                    seed: int = 0, conv: Callable | None = None) -> dict[str, Any]:
    """Meta-test ``params`` on N-way K-shot tasks from ``data``'s test characters.

    The paper's config for ``ways`` gives α and (unless ``eval_inner_steps`` is set)
    the fine-tuning steps; ``seed`` picks the tasks (the training run's seed gives its
    tasks). Returns the metrics that ``metrics.json`` holds: ``test_accuracy`` (mean,
    ci95, tasks, steps: after the last step), ``accuracy_by_step`` and
    ``ci95_by_step`` (after 0..steps), ``eval_seconds``, ``config``, ``versions``.
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
    accuracy = evaluate(params, test_images, config, conv)
    seconds = time.perf_counter() - start
    mean, ci = mean_ci95(accuracy)
    return {"test_accuracy": {"mean": float(mean[-1]), "ci95": float(ci[-1]),
                              "tasks": config.eval_tasks, "steps": config.eval_inner_steps},
            "accuracy_by_step": [float(m) for m in mean],
            "ci95_by_step": [float(c) for c in ci],
            "eval_seconds": round(seconds, 2),
            "config": dataclasses.asdict(config),
            "versions": versions()}


def parse_evaluate_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The ``evaluate`` subcommand's arguments."""
    p = argparse.ArgumentParser(
        prog="python -m minimaml.omniglot evaluate",
        description="Meta-test a θ (no training): fine-tune it on fresh test tasks and "
                    "write metrics.json. Defaults: the shipped 5-way 1-shot θ, the paper's "
                    "α and test steps for --ways, 600 tasks.")
    p.add_argument("--params", default=None,
                   help="params .npz (minimaml.npz.save) or a training checkpoint.npz "
                        "(default: the shipped θ for --ways/--shots)")
    p.add_argument("--data", default=None,
                   help="local directory, official .zip or .npz (default: "
                        "$MINIMAML_OMNIGLOT_DIR, else the download cache)")
    p.add_argument("--out", default="runs/omniglot_evaluate", help="output directory")
    p.add_argument("--ways", "-N", type=int, default=5)
    p.add_argument("--shots", "-K", type=int, default=1)
    p.add_argument("--eval-tasks", type=int, default=600, help="meta-test tasks")
    p.add_argument("--eval-inner-steps", type=int, default=None,
                   help="SGD steps at meta-test (default: the paper's for --ways)")
    p.add_argument("--seed", type=int, default=0, help="picks the test tasks")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def evaluate_main(argv: list[str] | None = None) -> int:
    """``evaluate``: 0 on success, 2 on bad input or missing data (one line on stderr)."""
    start = time.perf_counter()
    try:
        args = parse_evaluate_args(argv)
        # check the sizes (a ValueError naming the bad one) before any file is read
        paper_config(args.ways, args.shots, eval_tasks=args.eval_tasks, seed=args.seed,
                     **({} if args.eval_inner_steps is None
                        else {"eval_inner_steps": args.eval_inner_steps}))
        path = args.params if args.params is not None else shipped_path(args.ways, args.shots)
        params = load_params(path, args.ways)
        data = load(args.data, progress=not args.no_progress)
        metrics = evaluate_params(params, data, args.ways, args.shots,
                                  eval_tasks=args.eval_tasks,
                                  eval_inner_steps=args.eval_inner_steps, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics["params"] = str(path)
    metrics["total_seconds"] = round(time.perf_counter() - start, 2)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(metrics, indent=1).encode()
    npz.atomic_write(out / "metrics.json", lambda f: f.write(text))
    acc = metrics["test_accuracy"]
    print(f"{path}: test accuracy {100 * acc['mean']:.2f} ± {100 * acc['ci95']:.2f}% "
          f"({acc['tasks']} tasks, {args.ways}-way {args.shots}-shot, {acc['steps']} "
          f"steps; before adapting {100 * metrics['accuracy_by_step'][0]:.1f}%); "
          f"{metrics['total_seconds']:.1f} s in all, {metrics['eval_seconds']:.1f} s of "
          f"it evaluating; wrote {out / 'metrics.json'}")
    return 0
