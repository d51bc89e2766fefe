"""The learning curve of an Omniglot run: training loss and test accuracy against steps."""
from typing import Any

from ..plots import learning_curve, new_figure, save_figure


def plot(history: dict[str, Any], config: Any, path: Any = None) -> Any:
    """Training query loss (moving mean) and test accuracy vs step; written to ``path``
    (off-screen) when given, and returned."""
    fig, (ax_loss, ax_acc) = new_figure(path, ncols=2, figsize=(10, 3.6), layout="constrained")
    learning_curve(ax_loss, {"MAML": history["losses"]}, points=100, log=False,
                   ylabel="query loss after adaptation (moving mean)")
    ax_loss.set_title(f"{config.ways}-way {config.shots}-shot MAML training")
    evals = history["evals"]
    ax_acc.errorbar([e["step"] for e in evals], [100 * e["accuracy"] for e in evals],
                    yerr=[100 * e["ci95"] for e in evals], fmt="o-", capsize=3)
    ax_acc.axhline(100 / config.ways, color="gray", ls=":", label="chance")
    ax_acc.set_xlabel("meta-training step")
    ax_acc.set_ylabel(f"test accuracy, % ({config.eval_tasks} tasks, 95% CI)")
    ax_acc.set_title(f"meta-test after {config.eval_inner_steps} steps")
    ax_acc.legend()
    save_figure(fig, path)
    return fig
