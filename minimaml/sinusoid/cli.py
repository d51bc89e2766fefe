"""The command line ``python -m minimaml.sinusoid``: MAML vs the pretrained baseline on the sinusoid benchmark."""
import argparse
import sys

from .. import family
from ..cli import DEVICE_FLAGS, CommandLine, Flag, run_flags, use_devices
from .experiment import Config, format_table, run

_PAPER = Config()

FLAGS = (
    Flag("--meta-steps", int, f"meta-training steps, also the pretraining steps "
         f"(default: {_PAPER.meta_steps})"),
    Flag("--meta-batch", int, f"tasks per meta-step (default: {_PAPER.meta_batch})"),
    Flag("--support-size", int, f"K, support points per task during meta-training "
         f"(default: {_PAPER.support_size})", short="-K"),
    Flag("--query-size", int, f"query points per training task (default: {_PAPER.query_size})"),
    Flag("--inner-steps", int, f"SGD steps in the inner loop (default: {_PAPER.inner_steps}, "
         f"the paper's; for {', '.join(family.OWN_INNER_STEPS)} the algorithm's own)"),
    Flag("--inner-lr", float, f"α, the inner SGD step (default: {_PAPER.inner_lr})"),
    Flag("--meta-lr", float, f"β, Adam's step (default: {_PAPER.meta_lr})"),
    Flag("--first-order", None, "first-order MAML"),
    Flag("--algorithm", str, f"which member of the MAML family (minimaml.family) meta-learns: "
         f"{', '.join(family.ALGORITHMS)} (default: maml)"),
    Flag("--algorithm-option", family.parse_option, "NAME=VALUE, a setting of the algorithm's "
         "recipe, e.g. reg=5 for imaml (repeatable)", field="algorithm_options", repeat=True),
    Flag("--seed", int, f"seed of the initialisation, tasks and meta-test "
         f"(default: {_PAPER.seed})"),
    Flag("--eval-tasks", int, f"meta-test tasks per K (default: {_PAPER.eval_tasks})"),
    Flag("--eval-steps", int, f"fine-tuning steps at meta-test (default: {_PAPER.eval_steps})"),
    Flag("--out", str, "output folder: params, metrics.json, sinusoid.png (default: "
         "runs/sinusoid)", default="runs/sinusoid", field="out_dir", in_config=False),
    *run_flags(),
    *DEVICE_FLAGS,
)

COMMAND_LINE = CommandLine(
    "python -m minimaml.sinusoid",
    "MAML vs a pretrained baseline on the paper's sinusoid regression benchmark "
    "(defaults: the paper's config).", FLAGS)


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """The command line as a checked :class:`Config` and the parsed arguments."""
    args = COMMAND_LINE.parse(argv)
    return _config(args), args


def _config(args: argparse.Namespace) -> Config:
    fields = family.with_recipe_steps(COMMAND_LINE.config_fields(args), _PAPER.algorithm)
    return Config(**fields)


def main(argv: list[str] | None = None) -> int:
    """Run the experiment and print the tables; the exit status of
    :meth:`minimaml.cli.CommandLine.main` (0 done, 2 bad input or divergence, ...)."""
    return COMMAND_LINE.main(_run, argv)


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    devices = use_devices(args, config.meta_batch)
    _, _, metrics = run(config, out_dir=args.out, progress=not args.no_progress,
                        log=lambda line: print(line, file=sys.stderr, flush=True),
                        memory_limit_gb=args.memory_limit_gb, devices=devices)
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
