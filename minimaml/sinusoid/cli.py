"""The command line ``python -m minimaml.sinusoid``: MAML vs the pretrained baseline on the sinusoid benchmark."""
import argparse
import sys

from .. import family
from ..train import TrainingDiverged
from .experiment import Config, format_table, run


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """The command line as a checked :class:`Config` and the parsed arguments."""
    defaults = Config()
    p = argparse.ArgumentParser(
        prog="python -m minimaml.sinusoid",
        description="MAML vs a pretrained baseline on the paper's sinusoid regression "
                    "benchmark (defaults: the paper's config).")
    p.add_argument("--meta-steps", type=int, default=defaults.meta_steps)
    p.add_argument("--meta-batch", type=int, default=defaults.meta_batch)
    p.add_argument("--support-size", "-K", type=int, default=defaults.support_size,
                   help="K, support points per task during meta-training")
    p.add_argument("--query-size", type=int, default=defaults.query_size)
    p.add_argument("--inner-steps", type=int, default=None,
                   help=f"default: {defaults.inner_steps} (the paper's), or the algorithm's own "
                        f"for {', '.join(family.OWN_INNER_STEPS)}")
    p.add_argument("--inner-lr", type=float, default=defaults.inner_lr, help="α")
    p.add_argument("--meta-lr", type=float, default=defaults.meta_lr, help="β (Adam)")
    p.add_argument("--first-order", action="store_true", help="first-order MAML")
    p.add_argument("--algorithm", choices=family.ALGORITHMS, default="maml",
                   help="which member of the MAML family (minimaml.family) meta-learns")
    p.add_argument("--algorithm-option", type=family.parse_option, action="append", default=[],
                   metavar="NAME=VALUE", help="a setting of the algorithm's recipe, e.g. "
                   "reg=5 for imaml (repeatable)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--eval-tasks", type=int, default=defaults.eval_tasks)
    p.add_argument("--eval-steps", type=int, default=defaults.eval_steps)
    p.add_argument("--out", default="runs/sinusoid", help="output directory")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    inner_steps = args.inner_steps
    if inner_steps is None:
        inner_steps = (family.default_inner_steps(args.algorithm)
                       if args.algorithm in family.OWN_INNER_STEPS else defaults.inner_steps)
    config = Config(meta_steps=args.meta_steps, meta_batch=args.meta_batch,
                    support_size=args.support_size, query_size=args.query_size,
                    inner_steps=inner_steps, inner_lr=args.inner_lr,
                    meta_lr=args.meta_lr, first_order=args.first_order, seed=args.seed,
                    eval_tasks=args.eval_tasks, eval_steps=args.eval_steps,
                    algorithm=args.algorithm, algorithm_options=tuple(args.algorithm_option))
    return config, args


def main(argv: list[str] | None = None) -> int:
    """Run the experiment; print the tables; 0 on success, 2 on bad input or divergence."""
    try:
        config, args = parse_args(argv)
        _, _, metrics = run(config, out_dir=args.out, progress=not args.no_progress)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"error: {err}; try a smaller learning rate (--inner-lr or --meta-lr)",
              file=sys.stderr)
        return 2
    print(f"trained {config.meta_steps} meta-steps in {metrics['train_seconds']:.1f} s; "
          f"wrote {args.out}/metrics.json and {args.out}/sinusoid.png")
    for shots in map(str, config.eval_shots):
        print(format_table(metrics, shots))
        for name in ("maml", "pretrained"):
            res = metrics[name][shots]
            if res["diverged_tasks"]:
                print(f"warning: fine-tuning {name} diverged on {res['diverged_tasks']} of "
                      f"{res['tasks']} meta-test tasks at K={shots}; they are left out of "
                      f"its mean (see diverged_tasks in metrics.json)", file=sys.stderr)
    return 0

