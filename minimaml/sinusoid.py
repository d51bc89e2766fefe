"""The paper's sinusoid regression benchmark (Section 5.1) and its experiment.

p(T): amplitude A ~ U[0.1, 5.0], phase φ ~ U[0, π], inputs x ~ U[-5, 5],
targets y = A·sin(x − φ). Each task gives K support points (to fine-tune on) and Q
query points (to measure the adapted model on). The regressor is the paper's MLP
1-40-40-1 with ReLU, the loss is mean squared error.

Run the paper's experiment with ``python -m minimaml.sinusoid --out DIR`` (see
``--help``). Note: the paper says α = 0.01; the official code's sinusoid command
runs with its default ``update_lr`` of 0.001. We follow the paper (``--inner-lr``
changes it).
"""
import argparse
import dataclasses
import json
import math
import sys
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .checks import check_int
from .evaluate import finetune_curves, mean_ci95
from .losses import mse_loss
from .maml import check_inner_lr, check_steps, inner_loop
from .nets import mlp_apply, mlp_init
from .train import TrainingDiverged, meta_train, pretrain

AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
INPUT_RANGE = (-5.0, 5.0)

sine_loss = mse_loss(mlp_apply)
"""``sine_loss(params, (x, y))`` or ``(x, y, weights)``: the MLP's mean squared error."""


class SineTasks(NamedTuple):
    """A batch of sinusoid tasks; the leading axis indexes tasks.

    amplitude, phase: (T,); support_x, support_y: (T, K, 1); query_x, query_y: (T, Q, 1).
    """
    amplitude: jax.Array
    phase: jax.Array
    support_x: jax.Array
    support_y: jax.Array
    query_x: jax.Array
    query_y: jax.Array

    @property
    def support(self):
        return self.support_x, self.support_y

    @property
    def query(self):
        return self.query_x, self.query_y


def sine(x, amplitude, phase):
    """The task's true function y = A·sin(x − φ) (broadcasts)."""
    return amplitude * jnp.sin(x - phase)


def sample_tasks(key, num_tasks, support_size, query_size):
    """Draw ``num_tasks`` tasks from p(T), each with K support and Q query points.

    Returns a :class:`SineTasks` of arrays, all drawn from the one ``key``.
    """
    check_int(num_tasks, "num_tasks", 1)
    check_int(support_size, "support_size (K)", 1)
    check_int(query_size, "query_size (Q)", 1)
    k_amp, k_phase, k_x = jax.random.split(key, 3)
    amplitude = jax.random.uniform(k_amp, (num_tasks,), minval=AMPLITUDE_RANGE[0],
                                   maxval=AMPLITUDE_RANGE[1])
    phase = jax.random.uniform(k_phase, (num_tasks,), minval=PHASE_RANGE[0],
                               maxval=PHASE_RANGE[1])
    x = jax.random.uniform(k_x, (num_tasks, support_size + query_size, 1),
                           minval=INPUT_RANGE[0], maxval=INPUT_RANGE[1])
    y = sine(x, amplitude[:, None, None], phase[:, None, None])
    return SineTasks(amplitude, phase, x[:, :support_size], y[:, :support_size],
                     x[:, support_size:], y[:, support_size:])


def task_sampler(num_tasks, support_size, query_size):
    """``key -> (support, query)``, the form :func:`minimaml.train.optimize` wants."""
    check_int(num_tasks, "meta_batch", 1)
    check_int(support_size, "support_size (K)", 1)
    check_int(query_size, "query_size (Q)", 1)

    def sample(key):
        tasks = sample_tasks(key, num_tasks, support_size, query_size)
        return tasks.support, tasks.query
    return sample


@dataclasses.dataclass(frozen=True)
class Config:
    """The experiment's settings; the defaults are the paper's sinusoid config."""
    meta_steps: int = 70_000
    meta_batch: int = 25
    support_size: int = 10       # K during meta-training
    query_size: int = 10         # query points per training task
    inner_steps: int = 1
    inner_lr: float = 0.01       # α
    meta_lr: float = 1e-3        # β (Adam)
    first_order: bool = False
    hidden: tuple = (40, 40)
    seed: int = 0
    eval_tasks: int = 600
    eval_query: int = 100        # held-out points per evaluation task
    eval_shots: tuple = (5, 10, 20)
    eval_steps: int = 10

    def validate(self):
        for name in ("meta_steps", "meta_batch", "support_size", "query_size",
                     "eval_tasks", "eval_query"):
            check_int(getattr(self, name), name, 1)
        for k in self.eval_shots:
            check_int(k, "eval_shots", 1)
        for width in self.hidden:
            check_int(width, "hidden", 1)
        check_steps(self.inner_steps, "inner_steps")
        check_steps(self.eval_steps, "eval_steps")
        check_inner_lr(self.inner_lr, "inner_lr")
        check_inner_lr(self.meta_lr, "meta_lr")
        return self


def init_params(key, hidden=(40, 40)):
    """The paper's regressor 1-40-40-1 (or 1-hidden-1) freshly initialised."""
    return mlp_init(key, (1, *hidden, 1))


def train(config, progress=True):
    """Meta-train MAML and the pretrained baseline from the same initialisation.

    Returns ``(maml_params, pretrained_params, history)`` with history holding both
    loss curves and their wall times (seconds, compilation included).
    """
    config.validate()
    key = jax.random.key(config.seed)
    init_key, maml_key, pre_key = jax.random.split(key, 3)
    params0 = init_params(init_key, config.hidden)
    sampler = task_sampler(config.meta_batch, config.support_size, config.query_size)

    start = time.perf_counter()
    maml_params, _, maml_losses = meta_train(
        sine_loss, params0, sampler, maml_key, meta_steps=config.meta_steps,
        inner_lr=config.inner_lr, inner_steps=config.inner_steps,
        first_order=config.first_order, meta_lr=config.meta_lr, progress=progress)
    jax.block_until_ready(maml_params)
    maml_seconds = time.perf_counter() - start

    start = time.perf_counter()
    pre_params, _, pre_losses = pretrain(
        sine_loss, params0, sampler, pre_key, steps=config.meta_steps, lr=config.meta_lr,
        progress=progress)
    jax.block_until_ready(pre_params)
    pre_seconds = time.perf_counter() - start
    history = {"maml_losses": maml_losses, "pretrained_losses": pre_losses,
               "maml_seconds": maml_seconds, "pretrained_seconds": pre_seconds}
    return maml_params, pre_params, history


def evaluation_tasks(config, shots):
    """The fixed, fresh meta-test tasks for K = ``shots`` (seeded apart from training)."""
    key = jax.random.fold_in(jax.random.key(config.seed), 10_000 + shots)
    return sample_tasks(key, config.eval_tasks, shots, config.eval_query)


def evaluate(params, config, inner_lr=None, max_diverged_fraction=0.1):
    """Meta-test ``params``: for each K, query MSE mean and 95% CI after 0..eval_steps steps.

    Fine-tuning from a meta-learned θ with several steps can blow up on a rare task
    (MAML only trained its one-step behaviour). A task whose query MSE becomes
    non-finite at any step is counted in ``diverged_tasks`` and left out of the mean
    at every step, so each curve averages the same tasks; if more than
    ``max_diverged_fraction`` of the tasks diverge, this raises TrainingDiverged.

    Returns ``{"5": {"mse": [...], "ci95": [...], "diverged_tasks": n}, ...}``
    (lists of eval_steps + 1).
    """
    inner_lr = config.inner_lr if inner_lr is None else inner_lr
    results = {}
    for shots in config.eval_shots:
        tasks = evaluation_tasks(config, shots)
        curves = finetune_curves(sine_loss, params, tasks.support, tasks.query, inner_lr,
                                 config.eval_steps)
        finite_tasks = np.isfinite(curves).all(axis=1)
        diverged = int((~finite_tasks).sum())
        if diverged > max_diverged_fraction * len(curves):
            first_step = int(np.argmin(np.isfinite(curves).all(axis=0)))
            raise TrainingDiverged(
                f"fine-tuning diverged at meta-test (K={shots}) on {diverged} of {len(curves)} "
                f"tasks, the query MSE becoming non-finite after step {first_step}; try a "
                f"smaller learning rate (inner_lr={inner_lr}).")
        mean, ci = mean_ci95(curves[finite_tasks])
        results[str(shots)] = {"mse": mean.tolist(), "ci95": ci.tolist(),
                               "diverged_tasks": diverged, "tasks": len(curves)}
    return results


def adaptation_predictions(params, support_x, support_y, x, inner_lr, steps):
    """Predictions on ``x`` after 0..steps fine-tuning steps on one task's support set.

    support_x, support_y: (K, 1); x: (n, 1) -> (steps + 1, n, 1).
    """
    _, traj = inner_loop(sine_loss, params, (support_x, support_y), inner_lr, steps,
                         trajectory=True)
    return jax.vmap(mlp_apply, in_axes=(0, None))(traj.params, x)


def plot(maml_params, pre_params, metrics, config, path=None, plot_steps=(0, 1, 10)):
    """The paper's Fig. 2 (adapting to K = 5 and 10 points) and Fig. 3 (MSE vs steps)."""
    import matplotlib
    import matplotlib.pyplot as plt

    if path is not None:
        matplotlib.use("Agg")
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    grid = jnp.linspace(*INPUT_RANGE, 200)[:, None]
    task = sample_tasks(jax.random.fold_in(jax.random.key(config.seed), 20_000), 1, 20, 1)
    amp, phase = task.amplitude[0], task.phase[0]
    steps = max(plot_steps)
    colors = {0: "tab:green", 1: "tab:orange", steps: "tab:red"}
    for row, shots in enumerate((5, 10)):
        sx, sy = task.support_x[0, :shots], task.support_y[0, :shots]
        for col, (name, params) in enumerate((("MAML", maml_params),
                                              ("pretrained", pre_params))):
            ax = axes[row, col]
            preds = adaptation_predictions(params, sx, sy, grid, config.inner_lr, steps)
            ax.plot(grid[:, 0], sine(grid[:, 0], amp, phase), "k-", lw=2, label="ground truth")
            for n in plot_steps:
                ax.plot(grid[:, 0], preds[n, :, 0], "--", color=colors.get(n, None),
                        label="pre-update" if n == 0 else f"after {n} step{'s' * (n > 1)}")
            ax.plot(sx[:, 0], sy[:, 0], "k^", ms=8, label=f"K={shots} points")
            ax.set_title(f"{name}, K={shots}")
            ax.set_ylim(-6, 6)
            ax.legend(fontsize=7, loc="lower right")
    ax = axes[0, 2]
    for shots, style in zip(config.eval_shots, ("-", "--", ":")):
        for name, color in (("maml", "tab:blue"), ("pretrained", "tab:gray")):
            res = metrics[name][str(shots)]
            n = np.arange(len(res["mse"]))
            ax.errorbar(n, res["mse"], yerr=res["ci95"], fmt=style, color=color,
                        capsize=2, label=f"{name} K={shots}")
    ax.set_xlabel("fine-tuning gradient steps")
    ax.set_ylabel(f"query MSE ({config.eval_tasks} tasks, 95% CI)")
    ax.set_yscale("log")
    ax.set_title("Meta-test: MSE vs steps (Fig. 3)")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    for name, color in (("maml", "tab:blue"), ("pretrained", "tab:gray")):
        losses = np.asarray(metrics["history"][f"{name}_losses"])
        window = max(1, len(losses) // 200)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, color=color, label=name)
    ax.set_xlabel("meta-training step")
    ax.set_ylabel("training loss (moving mean)")
    ax.set_yscale("log")
    ax.set_title("Training")
    ax.legend(fontsize=7)
    if path is not None:
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return fig


def run(config, out_dir=None, progress=True):
    """Train, meta-test and (if ``out_dir``) write params, metrics.json and sinusoid.png."""
    maml_params, pre_params, history = train(config, progress=progress)
    out = None
    if out_dir is not None:
        import pathlib
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_params(out / "maml_params.npz", maml_params)
        save_params(out / "pretrained_params.npz", pre_params)
    metrics = {
        "config": dataclasses.asdict(config),
        "train_seconds": history["maml_seconds"],
        "pretrain_seconds": history["pretrained_seconds"],
        "maml": evaluate(maml_params, config),
        "pretrained": evaluate(pre_params, config),
        "versions": {"jax": jax.__version__, "backend": jax.default_backend()},
    }
    curves = {"maml_losses": history["maml_losses"],
              "pretrained_losses": history["pretrained_losses"]}
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
        plot(maml_params, pre_params, {**metrics, "history": curves}, config,
             path=out / "sinusoid.png")
    return maml_params, pre_params, {**metrics, "history": curves}


def save_params(path, params):
    """Save MLP params (list of {"w", "b"}) as a plain npz: layer{i}_w, layer{i}_b."""
    arrays = {f"layer{i}_{name}": np.asarray(value)
              for i, layer in enumerate(params) for name, value in layer.items()}
    np.savez(path, **arrays)


def load_params(path):
    """Load MLP params written by :func:`save_params` (no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        n_layers = len({k.split("_")[0] for k in data.files})
        return [{"w": jnp.asarray(data[f"layer{i}_w"]), "b": jnp.asarray(data[f"layer{i}_b"])}
                for i in range(n_layers)]


def format_table(metrics, shots="5", steps=(1, 5, 10)):
    """A markdown table of query MSE ± 95% CI after the given steps, both models."""
    head = "| model | " + " | ".join(f"{n} step{'s' * (n > 1)}" for n in steps) + " |"
    lines = [head, "|---" * (len(steps) + 1) + "|"]
    for name in ("maml", "pretrained"):
        res = metrics[name][shots]
        cells = [f"{res['mse'][n]:.3f} ± {res['ci95'][n]:.3f}" for n in steps]
        note = f" ({res['diverged_tasks']} of {res['tasks']} tasks diverged, left out)" \
            if res.get("diverged_tasks") else ""
        lines.append(f"| {name} (K={shots}){note} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
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
    p.add_argument("--inner-steps", type=int, default=defaults.inner_steps)
    p.add_argument("--inner-lr", type=float, default=defaults.inner_lr, help="α")
    p.add_argument("--meta-lr", type=float, default=defaults.meta_lr, help="β (Adam)")
    p.add_argument("--first-order", action="store_true", help="first-order MAML")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--eval-tasks", type=int, default=defaults.eval_tasks)
    p.add_argument("--eval-steps", type=int, default=defaults.eval_steps)
    p.add_argument("--out", default="runs/sinusoid", help="output directory")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    config = Config(meta_steps=args.meta_steps, meta_batch=args.meta_batch,
                    support_size=args.support_size, query_size=args.query_size,
                    inner_steps=args.inner_steps, inner_lr=args.inner_lr,
                    meta_lr=args.meta_lr, first_order=args.first_order, seed=args.seed,
                    eval_tasks=args.eval_tasks, eval_steps=args.eval_steps)
    return config, args


def main(argv=None):
    config, args = parse_args(argv)
    try:
        config.validate()
        _, _, metrics = run(config, out_dir=args.out, progress=not args.no_progress)
    except (ValueError, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
