"""The command line ``python -m minimaml.omniglot``: MAML few-shot classification."""
import argparse
import sys

from .. import family
from ..train import TrainingDiverged
from .data import load
from .experiment import Config, paper_config, run


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """The command line as a checked :class:`Config` and the parsed arguments."""
    p = argparse.ArgumentParser(
        prog="python -m minimaml.omniglot",
        description="MAML few-shot classification on Omniglot (defaults: the paper's "
                    "hyperparameters for the chosen --ways).")
    p.add_argument("--ways", "-N", type=int, default=5)
    p.add_argument("--shots", "-K", type=int, default=1)
    p.add_argument("--meta-steps", type=int, default=60_000)
    p.add_argument("--data", default=None,
                   help="local directory, official .zip or .npz (default: download)")
    p.add_argument("--out", default="runs/omniglot", help="output directory")
    p.add_argument("--first-order", action="store_true", help="first-order MAML")
    p.add_argument("--algorithm", choices=family.ALGORITHMS, default="maml",
                   help="which member of the MAML family (minimaml.family) meta-learns")
    p.add_argument("--algorithm-option", type=family.parse_option, action="append", default=[],
                   metavar="NAME=VALUE", help="a setting of the algorithm's recipe, e.g. "
                   "reg=2 for imaml (repeatable)")
    p.add_argument("--remat", action="store_true",
                   help="nested jax.checkpoint of the inner steps (less memory for many steps)")
    for flag, kind, what in (("--meta-batch", int, "tasks per meta-step"),
                             ("--inner-steps", int, "SGD steps in training"),
                             ("--inner-lr", float, "α"),
                             ("--eval-inner-steps", int, "SGD steps at meta-test"),
                             ("--meta-lr", float, "β (Adam)"),
                             ("--queries", int, "query images per class in training"),
                             ("--eval-queries", int, "query images per class at test"),
                             ("--eval-tasks", int, "meta-test tasks"),
                             ("--eval-every", int, "steps between test evaluations"),
                             ("--filters", int, "conv filters per layer"),
                             ("--train-characters", int, "characters for meta-training"),
                             ("--steps-per-call", int, "meta-steps per jitted call"),
                             ("--seed", int, "seed"),
                             ("--checkpoint-minutes", float, "minutes between checkpoints"),
                             ("--max-minutes", float, "stop training after this long")):
        p.add_argument(flag, type=kind, default=None, help=f"{what} (default: paper)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    overrides = {name: getattr(args, name) for name in (
        "meta_batch", "inner_steps", "inner_lr", "eval_inner_steps", "meta_lr", "queries",
        "eval_queries", "eval_tasks", "eval_every", "filters", "train_characters",
        "steps_per_call", "seed") if getattr(args, name) is not None}
    if args.checkpoint_minutes is not None:
        overrides["checkpoint_seconds"] = 60 * args.checkpoint_minutes
    if args.max_minutes is not None:
        overrides["max_train_seconds"] = 60 * args.max_minutes
    if args.inner_steps is None and args.algorithm in family.OWN_INNER_STEPS:
        overrides["inner_steps"] = family.default_inner_steps(args.algorithm)
    config = paper_config(args.ways, args.shots, meta_steps=args.meta_steps,
                          first_order=args.first_order, remat=args.remat,
                          algorithm=args.algorithm,
                          algorithm_options=tuple(args.algorithm_option), **overrides)
    return config, args


def main(argv: list[str] | None = None) -> int:
    """Train and meta-test; 0 on success, 2 on bad input, missing data or divergence."""
    try:
        config, args = parse_args(argv)
        data = load(args.data, progress=not args.no_progress)
        _, metrics, _ = run(config, data, args.out, progress=not args.no_progress,
                            log=lambda m: print(m, flush=True))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: {err}; try a smaller learning rate (--inner-lr or --meta-lr)",
              file=sys.stderr)
        return 2
    acc = metrics["test_accuracy"]
    print(f"trained {metrics['meta_steps']} meta-steps in {metrics['train_seconds']:.1f} s; "
          f"test accuracy {100 * acc['mean']:.2f} ± {100 * acc['ci95']:.2f}% "
          f"({config.eval_tasks} tasks, {config.ways}-way {config.shots}-shot); "
          f"wrote {args.out}/metrics.json and {args.out}/learning_curve.png")
    return 0

