"""The paper's Fig. 2 (adapting to K = 5 and 10 points) and Fig. 3 (MSE vs steps)."""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..maml import inner_loop
from ..nets import mlp_apply
from ..plots import learning_curve, new_figure, save_figure
from ..types import ArrayLike, PyTree
from .tasks import INPUT_RANGE, sample_tasks, sine, sine_loss


def adaptation_predictions(params: PyTree, support_x: ArrayLike, support_y: ArrayLike,
                           x: ArrayLike, inner_lr: float, steps: int,
                           learned: Any = None) -> jax.Array:
    """Predictions on ``x`` after 0..steps fine-tuning steps on one task's support set.

    With ``learned`` (a :class:`minimaml.family.Learned`) θ is fine-tuned its way
    (``params`` and ``inner_lr`` are then not used).
    support_x, support_y: (K, 1); x: (n, 1) -> (steps + 1, n, 1).
    """
    if learned is not None:
        traj = learned.trajectory(sine_loss, (support_x, support_y), steps)
    else:
        _, traj = inner_loop(params, sine_loss, (support_x, support_y), inner_lr, steps,
                             trajectory=True)
    return jax.vmap(mlp_apply, in_axes=(0, None))(traj.params, x)


def plot(maml_params: PyTree, pre_params: PyTree, metrics: dict[str, Any], config: Any,
         path: Any = None, plot_steps: tuple[int, ...] = (0, 1, 10), learned: Any = None) -> Any:
    """Fig. 2 for both models (top: K=5, bottom: K=10), Fig. 3 and the training curves.

    ``learned``: how the meta-learned θ is fine-tuned (:class:`minimaml.family.Learned`;
    None: SGD at ``config.inner_lr``), e.g. a Meta-SGD run's learned rates.

    With ``path`` the figure is written there (off-screen); it is returned either way.
    """
    fig, axes = new_figure(path, nrows=2, ncols=3, figsize=(13, 7), layout="constrained")
    grid = jnp.linspace(*INPUT_RANGE, 200)[:, None]
    task = sample_tasks(jax.random.fold_in(jax.random.key(config.seed), 20_000), 1, 20, 1)
    amp, phase = task.amplitude[0], task.phase[0]
    steps = max(plot_steps)
    colors = {0: "tab:green", 1: "tab:orange", steps: "tab:red"}
    for row, shots in enumerate((5, 10)):
        sx, sy = task.support_x[0, :shots], task.support_y[0, :shots]
        meta_name = getattr(config, "algorithm", "maml").upper()
        for col, (name, params) in enumerate(((meta_name, maml_params),
                                              ("pretrained", pre_params))):
            ax = axes[row, col]
            preds = adaptation_predictions(params, sx, sy, grid, config.inner_lr, steps,
                                           learned if col == 0 else None)
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
            n = np.arange(len(res["mse"]))       # None (diverged) becomes NaN: not drawn
            ax.errorbar(n, np.asarray(res["mse"], float), yerr=np.asarray(res["ci95"], float),
                        fmt=style, color=color,
                        capsize=2, label=f"{name} K={shots}")
    ax.set_xlabel("fine-tuning gradient steps")
    ax.set_ylabel(f"query MSE ({config.eval_tasks} tasks, 95% CI)")
    ax.set_yscale("log")
    ax.set_title("Meta-test: MSE vs steps (Fig. 3)")
    ax.legend(fontsize=7)
    ax = axes[1, 2]
    learning_curve(ax, {name: metrics["history"][f"{name}_losses"]
                        for name in ("maml", "pretrained")},
                   colors={"maml": "tab:blue", "pretrained": "tab:gray"})
    ax.set_title("Training")
    save_figure(fig, path)
    return fig
