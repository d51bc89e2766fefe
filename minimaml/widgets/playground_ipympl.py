"""The playground's panels on an ipympl canvas: matplotlib draws each frame in the kernel and
ships it as a whole PNG (``playground(renderer="ipympl")``). Kept to compare with the
default panels the browser draws (:mod:`.sinusoid_figures`): see BENCHMARKS.md, widget latency.
"""
from typing import Any

import numpy as np

from ..sinusoid import INPUT_RANGE
from .canvas import BlitFigure
from .sinusoid_adaptation import GRID, MAX_STEPS, MSE_CLIP, Y_LIMIT
from .sinusoid_figures import COLORS, INITS, title_text


class AdaptationFigure(BlitFigure):
    """The playground's figure: the fits on the left, query MSE per step on the right."""

    def __init__(self):
        super().__init__(figsize=(9.0, 3.4), dpi=80)
        self.widget = self.canvas
        fig = self.figure
        ax, ax_mse = fig.subplots(1, 2, width_ratios=(1.7, 1))
        fig.subplots_adjust(left=0.05, right=0.985, bottom=0.14, top=0.88, wspace=0.2)
        x = GRID[:, 0]
        # Everything that moves is "animated": drawn by blit() on top of the background.
        self.truth_line, = ax.plot(x, x, "k-", lw=2, animated=True)
        self.support_dots, = ax.plot([], [], "k^", ms=7, animated=True)
        self.pred_lines = {name: ax.plot(x, x, color=COLORS[name], lw=1.8,
                                         ls="--" if name == "random" else "-",
                                         animated=True)[0] for name in INITS}
        self.task_text = ax.text(0.01, 0.98, "", transform=ax.transAxes, va="top",
                                 fontsize=9, animated=True)
        self.diverged_text = ax.text(0.99, 0.02, "", transform=ax.transAxes, ha="right",
                                     va="bottom", fontsize=10, color="tab:red",
                                     animated=True)
        ax.set_xlim(*INPUT_RANGE)
        ax.set_ylim(-Y_LIMIT, Y_LIMIT)
        ax.set_xlabel("x")
        ax.set_ylabel("y", labelpad=1)
        ax.grid(alpha=0.3)
        fig.legend(handles=[self.truth_line, self.support_dots, *self.pred_lines.values()],
                   labels=["true function", "K support points",
                           *(f"from {name} init" for name in INITS)],
                   loc="upper center", ncol=5, fontsize=9, frameon=False)

        steps = np.arange(MAX_STEPS + 1)
        self.mse_lines = {name: ax_mse.plot(steps, steps + 1.0, color=COLORS[name], lw=1.5,
                                            animated=True)[0] for name in INITS}
        self.mse_dots = {name: ax_mse.plot([0], [1.0], "o", color=COLORS[name], ms=5,
                                           animated=True)[0] for name in INITS}
        self.step_marker = ax_mse.axvline(0, color="k", lw=0.8, ls=":", animated=True)
        ax_mse.set_yscale("log")
        ax_mse.set_xlim(0, MAX_STEPS)
        ax_mse.set_ylim(*MSE_CLIP)
        ax_mse.set_xlabel("fine-tuning steps")
        ax_mse.set_ylabel("query MSE", labelpad=1)
        ax_mse.grid(alpha=0.3)
        self.animated = [self.truth_line, self.support_dots, *self.pred_lines.values(),
                         *self.mse_lines.values(), *self.mse_dots.values(), self.step_marker,
                         self.task_text, self.diverged_text]

    def update(self, task: Any, shots: int, inner_lr: float, steps: int,
               current: dict[str, Any], diverged: list) -> None:
        """Set every moving artist for this task, K, step and per-init :class:`PlotData`."""
        self.truth_line.set_ydata(task.amplitude * np.sin(GRID[:, 0] - task.phase))
        self.support_dots.set_data(task.support_x[:shots, 0], task.support_y[:shots, 0])
        self.task_text.set_text(title_text(task, shots, inner_lr, steps, []))
        self.step_marker.set_xdata([steps, steps])
        for name, data in current.items():
            self.pred_lines[name].set_ydata(data.predictions)
            self.mse_lines[name].set_ydata(data.mse_curve)
            self.mse_dots[name].set_data([steps], [data.mse_curve[steps]])
        self.diverged_text.set_text("diverged: α too large" if diverged else "")

    def sync(self) -> None:
        self.blit()

    def show(self) -> None:
        super().show()
