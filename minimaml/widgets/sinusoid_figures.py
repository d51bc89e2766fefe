"""The playground's two panels — the fits, and the query MSE per step — drawn live in the
browser (bqplot) or as a still (matplotlib). Both draw the same :class:`~.sinusoid_adaptation.PlotData`.
"""
from typing import Any

import numpy as np

from ..sinusoid import INPUT_RANGE
from .live import as_float32, panel, panel_row
from .sinusoid_adaptation import GRID, MAX_STEPS, MSE_CLIP, Y_LIMIT

INITS = ("MAML", "pretrained", "random")
COLORS = {"MAML": "#1f77b4", "pretrained": "#ff7f0e", "random": "#2ca02c"}


def settings_text(shots: int, inner_lr: float, steps: int) -> str:
    """K, α and steps the one way the widget writes them everywhere: α with three
    significant digits, trailing zeros kept (``#.3g``), exactly as the slider shows it."""
    return f"K = {shots}, α = {inner_lr:#.3g}, {steps} step{'s' * (steps != 1)}"


def legend_html(colors: dict[str, str]) -> str:
    names = " &nbsp; ".join(f"<span style='color:{color}'>━ from {name}</span>"
                            for name, color in colors.items())
    return f"<span>━ true function &nbsp; ▲ K support points &nbsp; {names}</span>"


class LiveAdaptationFigure:
    """Both panels as bqplot figures: each move sends the new numbers (float32) only.

    ``colors``: {init name: color}, in drawing order. ``split``: one fit panel per init,
    side by side, instead of all fits in one panel.
    """

    def __init__(self, colors: dict[str, str] | None = None, split: bool = False):
        import bqplot as bq

        self.colors = dict(colors or COLORS)
        names = list(self.colors)
        x = as_float32(GRID[:, 0])
        groups = [[n] for n in names] if split else [names]
        self.fits, self.lines, self.supports = [], [], []
        for group in groups:
            fit, sx, sy = panel(INPUT_RANGE, (-Y_LIMIT, Y_LIMIT), x_label="x", y_label="y",
                                flex="1.7 1 420px" if not split else "1 1 320px",
                                title=group[0] if split else "")
            lines = bq.Lines(x=x, y=np.zeros((1 + len(group), len(x)), np.float32),
                             colors=["black", *(self.colors[n] for n in group)],
                             stroke_width=2, scales={"x": sx, "y": sy})
            support = bq.Scatter(x=np.zeros(1, np.float32), y=np.zeros(1, np.float32),
                                 marker="triangle-up", colors=["black"], default_size=40,
                                 scales={"x": sx, "y": sy})
            fit.marks = [lines, support]
            self.fits.append(fit)
            self.lines.append((group, lines))
            self.supports.append(support)
        self.fit = self.fits[0]
        self.split = split

        self.mse, mx, my = panel((0, MAX_STEPS), MSE_CLIP, x_label="fine-tuning steps",
                                 y_label="query MSE", log_y=True, flex="1 1 300px")
        steps = np.arange(MAX_STEPS + 1, dtype=np.float32)
        self.mse_lines = bq.Lines(x=steps, y=np.ones((len(names), len(steps)), np.float32),
                                  colors=[self.colors[n] for n in names], stroke_width=1.5,
                                  scales={"x": mx, "y": my})
        self.mse_dots = bq.Scatter(x=np.zeros(len(names), np.float32),
                                   y=np.ones(len(names), np.float32),
                                   colors=[self.colors[n] for n in names], default_size=36,
                                   scales={"x": mx, "y": my})
        self.mse.marks = [self.mse_lines, self.mse_dots]
        self.widget = panel_row(*self.fits, self.mse)
        self.widget.add_class("minimaml-figure")
        self._task_key = None
        self._curves_key = None

    def update(self, task: Any, shots: int, inner_lr: float, steps: int,
               current: dict[str, Any], diverged: list) -> None:
        names = list(self.colors)
        truth = task.amplitude * np.sin(GRID[:, 0] - task.phase)
        for group, lines in self.lines:
            lines.y = as_float32([truth, *(current[n].predictions for n in group)])
        task_key = (id(task), shots)
        if task_key != self._task_key:   # the support points move with the task and K only
            for support in self.supports:
                with support.hold_sync():
                    support.x = as_float32(task.support_x[:shots, 0])
                    support.y = as_float32(task.support_y[:shots, 0])
            self._task_key = task_key
        # Each trait set is one message to the browser: a steps move sends only the fit
        # lines and the dots (the readout states the settings; the still's title too).
        curves_key = (id(task), shots, inner_lr)
        if curves_key != self._curves_key:
            self.mse_lines.y = as_float32([current[n].mse_curve for n in names])
            self._curves_key = curves_key
        with self.mse_dots.hold_sync():
            self.mse_dots.x = np.full(len(names), steps, np.float32)
            self.mse_dots.y = as_float32([current[n].mse_curve[steps] for n in names])

    def sync(self) -> None:
        """Nothing to do: every trait set above has already been sent."""


def title_text(task: Any, shots: int, inner_lr: float, steps: int, diverged: list) -> str:
    text = (f"task A = {task.amplitude:.2f}, φ = {task.phase:.2f} · "
            f"{settings_text(shots, inner_lr, steps)}")
    if diverged:
        text += " · diverged: " + ", ".join(name for name, _ in diverged)
    return text


def draw_adaptation(figure: Any, task: Any, shots: int, inner_lr: float, steps: int,
                    current: dict[str, Any], diverged: list,
                    colors: dict[str, str] | None = None, split: bool = False) -> Any:
    """The same panels with matplotlib on ``figure`` (for stills); returns it."""
    colors = dict(colors or COLORS)
    groups = [[n] for n in colors] if split else [list(colors)]
    axes = figure.subplots(1, len(groups) + 1,
                           width_ratios=[1.0 if split else 1.7] * len(groups) + [1])
    x = GRID[:, 0]
    for ax, group in zip(axes, groups):
        ax.plot(x, task.amplitude * np.sin(x - task.phase), "k-", lw=2,
                label="true function")
        ax.plot(task.support_x[:shots, 0], task.support_y[:shots, 0], "k^", ms=7,
                label="K support points")
        for name in group:
            ax.plot(x, current[name].predictions, color=colors[name], lw=1.8,
                    label=f"from {name}")
        ax.set(xlim=INPUT_RANGE, ylim=(-Y_LIMIT, Y_LIMIT), xlabel="x", ylabel="y",
               title=group[0] if split else "")
        ax.grid(alpha=0.3)
    ax, ax_mse = axes[0], axes[-1]
    steps_axis = np.arange(MAX_STEPS + 1)
    for name, color in colors.items():
        ax_mse.plot(steps_axis, current[name].mse_curve, color=color, lw=1.5,
                    label=None if not split else f"from {name}")
        ax_mse.plot([steps], [current[name].mse_curve[steps]], "o", color=color, ms=5)
    ax_mse.axvline(steps, color="k", lw=0.8, ls=":")
    ax_mse.set(yscale="log", xlim=(0, MAX_STEPS), ylim=MSE_CLIP, xlabel="fine-tuning steps",
               ylabel="query MSE")
    ax_mse.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    for extra in axes[1:]:
        more = extra.get_legend_handles_labels()
        handles += [h for h, l in zip(*more) if l not in labels]
        labels += [l for l in more[1] if l not in labels]
    figure.legend(handles, labels, loc="lower center", ncol=5, fontsize=9, frameon=False)
    figure.suptitle(title_text(task, shots, inner_lr, steps, diverged), fontsize=11)
    figure.subplots_adjust(left=0.06, right=0.985, bottom=0.24, top=0.9, wspace=0.22)
    return figure
