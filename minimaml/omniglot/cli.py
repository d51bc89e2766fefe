"""The command line ``python -m minimaml.omniglot``: MAML few-shot classification."""
import argparse
import sys

from .. import family
from ..cli import DEVICE_FLAGS, CommandLine, Flag, run_flags, use_devices
from ..runs import RunFolder, memory_limit
from .data import BASE_URL, DataUnavailable, data_dir, load
from .evaluation import evaluate_main
from .experiment import Config, paper_config, run


def _minutes(value: float) -> float:
    return 60 * value


FLAGS = (
    Flag("--ways", int, "N, classes per task (default: 5)", short="-N", default=5),
    Flag("--shots", int, "K, examples per class in a task's support set (default: 1)",
         short="-K", default=1),
    Flag("--meta-steps", int, "meta-training steps (default: 60000)"),
    Flag("--data", str, "local directory, official .zip or .npz (default: "
         "$MINIMAML_OMNIGLOT_DIR, else download)", in_config=False),
    Flag("--out", str, "output folder: checkpoint.npz, metrics.json, learning_curve.png "
         "(default: runs/omniglot)", default="runs/omniglot", field="out_dir",
         in_config=False),
    Flag("--first-order", None, "first-order MAML"),
    Flag("--algorithm", str, f"which member of the MAML family (minimaml.family) meta-learns: "
         f"{', '.join(family.ALGORITHMS)} (default: maml)"),
    Flag("--algorithm-option", family.parse_option, "NAME=VALUE, a setting of the algorithm's "
         "recipe, e.g. reg=2 for imaml (repeatable)", field="algorithm_options", repeat=True),
    Flag("--remat", None, "nested jax.checkpoint of the inner steps (less memory for many "
         "steps)"),
    Flag("--meta-batch", int, "tasks per meta-step (default: paper)"),
    Flag("--inner-steps", int, f"SGD steps in training (default: paper; for "
         f"{', '.join(family.OWN_INNER_STEPS)} the algorithm's own)"),
    Flag("--inner-lr", float, "α (default: paper)"),
    Flag("--eval-inner-steps", int, "SGD steps at meta-test (default: paper)"),
    Flag("--meta-lr", float, "β, Adam's step (default: paper)"),
    Flag("--queries", int, "query images per class in training (default: paper)"),
    Flag("--eval-queries", int, "query images per class at test (default: paper)"),
    Flag("--eval-tasks", int, "meta-test tasks (default: paper)"),
    Flag("--eval-every", int, "steps between test evaluations (default: at the end only)"),
    Flag("--filters", int, "conv filters per layer (default: paper)"),
    Flag("--train-characters", int, "characters for meta-training (default: paper)"),
    Flag("--steps-per-call", int, "meta-steps per jitted call (default: 100)"),
    Flag("--seed", int, "seed (default: 0)"),
    Flag("--checkpoint-minutes", float, "minutes between checkpoints (default: 5)",
         field="checkpoint_seconds", to_field=_minutes),
    Flag("--max-minutes", float, "stop training after this long; resume later with the "
         "same command (default: no limit)", field="max_train_seconds", to_field=_minutes),
    Flag("--max-cpu-minutes", float, "stop training after it has used this much CPU time "
         "(all threads; compilation included, evaluation not): a budget that a busy "
         "machine does not shrink (default: no limit)", field="max_train_cpu_seconds",
         to_field=_minutes),
    *run_flags(),
    *DEVICE_FLAGS,
)

COMMAND_LINE = CommandLine(
    "python -m minimaml.omniglot",
    "MAML few-shot classification on Omniglot (defaults: the paper's hyperparameters for "
    "the chosen --ways). `python -m minimaml.omniglot evaluate --help`: meta-test a θ "
    "without training.", FLAGS)


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """The command line as a checked :class:`Config` and the parsed arguments."""
    args = COMMAND_LINE.parse(argv)
    return _config(args), args


def _config(args: argparse.Namespace) -> Config:
    fields = family.with_recipe_steps(COMMAND_LINE.config_fields(args), "maml")
    return paper_config(**fields)


def main(argv: list[str] | None = None) -> int:
    """Train and meta-test; the exit status of :meth:`minimaml.cli.CommandLine.main`
    (0 done; 2 bad input, missing data or divergence; ...). A first argument
    ``evaluate`` runs :func:`.evaluation.evaluate_main` on the rest instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["evaluate"]:
        return evaluate_main(argv[1:])
    return COMMAND_LINE.main(_run, argv)


def _run(args: argparse.Namespace) -> int:
    config = _config(args)
    devices = use_devices(args, config.meta_batch)
    memory_limit(args.memory_limit_gb)
    progress = not args.no_progress
    with RunFolder(args.out):        # checked and locked before the data is read
        try:
            data = load(args.data, progress=progress)
        except (ValueError, FileNotFoundError) as err:
            if args.data is None or isinstance(err, DataUnavailable):
                raise
            raise type(err)(f"--data: {err}") from None
        source = args.data or data_dir() or f"downloaded from {BASE_URL}"
        _, metrics, _ = run(config, data, args.out, progress=progress,
                            log=lambda m: print(m, flush=True),
                            memory_limit_gb=args.memory_limit_gb, data_source=source,
                            devices=devices)
    acc = metrics["test_accuracy"]
    print(f"trained {metrics['meta_steps']} meta-steps in {metrics['train_seconds']:.1f} s; "
          f"test accuracy {100 * acc['mean']:.2f} ± {100 * acc['ci95']:.2f}% "
          f"({config.eval_tasks} tasks, {config.ways}-way {config.shots}-shot); "
          f"wrote {args.out}/metrics.json and {args.out}/learning_curve.png")
    diverged = metrics["evals"][-1].get("diverged_tasks", 0)
    if diverged:
        print(f"warning: fine-tuning diverged on {diverged} of {config.eval_tasks} meta-test "
              f"tasks; they count as wrong (see diverged_tasks in metrics.json)",
              file=sys.stderr)
    return 0
