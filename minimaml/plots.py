"""Figures the benchmarks share. matplotlib (the ``notebooks`` extra) is imported here only."""
from typing import Any

import numpy as np


def moving_mean(values: Any, points: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``values`` smoothed by a moving mean over ``len / points`` steps, and the
    step at the end of each window."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, len(values) // points)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    return np.arange(len(smooth)) + window, smooth


def learning_curve(ax: Any, curves: dict[str, Any], *, points: int = 200,
                   colors: dict[str, str] | None = None, log: bool = True,
                   ylabel: str = "training loss (moving mean)") -> None:
    """Draw each ``{label: per-step losses}`` curve on ``ax`` as a moving mean."""
    for label, losses in curves.items():
        x, y = moving_mean(losses, points)
        ax.plot(x, y, color=(colors or {}).get(label), label=label)
    ax.set_xlabel("meta-training step")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if len(curves) > 1:
        ax.legend(fontsize=7)


def new_figure(path: Any, **subplots: Any) -> tuple[Any, Any]:
    """``(fig, axes)`` from ``plt.subplots(**subplots)``; off-screen (Agg) when the figure
    goes to a file (``path`` given), so a command-line run needs no display."""
    import matplotlib.pyplot as plt
    if path is not None:
        from matplotlib.figure import Figure
        fig = Figure(**{k: v for k, v in subplots.items() if k in ("figsize", "layout")})
        axes = fig.subplots(**{k: v for k, v in subplots.items()
                               if k not in ("figsize", "layout")})
        return fig, axes
    return plt.subplots(**subplots)


def save_figure(fig: Any, path: Any, dpi: int = 80) -> None:
    """Write ``fig`` to ``path`` (PNG) when a path is given."""
    if path is not None:
        fig.savefig(path, dpi=dpi)
