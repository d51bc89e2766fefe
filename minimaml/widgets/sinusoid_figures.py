"""The playground's two panels — the fits, and the query MSE per step — drawn live in the
browser (:class:`.frames.FramePanel`) or as a still (matplotlib), from the same numbers.
"""
from typing import Any

import numpy as np

from ..sinusoid import INPUT_RANGE
from .live import panel_row
from .sinusoid_adaptation import GRID, MAX_STEPS, MSE_CLIP, Y_LIMIT, clipped

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
    """Both panels drawn by the browser (:class:`.frames.FramePanel`). When K, α or the
    task change, each init's predictions after every step 0..MAX_STEPS go over once
    (float32, ~40 kB per init); the steps slider and ▶ then pick a frame in the browser.

    ``colors``: {init name: color}, in drawing order. ``split``: one fit panel per init,
    side by side, instead of all fits in one panel.
    """

    def __init__(self, colors: dict[str, str] | None = None, split: bool = False):
        from .frames import FramePanel

        self.colors = dict(colors or COLORS)
        names = list(self.colors)
        self.groups = [[n] for n in names] if split else [names]
        self.fits = []
        for group in self.groups:
            fit = FramePanel(GRID[:, 0], x_range=INPUT_RANGE, y_range=(-Y_LIMIT, Y_LIMIT),
                             x_label="x" if not split else f"x — from {group[0]}",
                             y_label="y", flex="1 1 320px" if split else "1.7 1 420px")
            fit.frame_colors = [self.colors[n] for n in group]
            self.fits.append(fit)
        self.mse = FramePanel(np.arange(MAX_STEPS + 1), x_range=(0, MAX_STEPS),
                              y_range=MSE_CLIP, log_y=True, x_label="fine-tuning steps",
                              y_label="query MSE", flex="1 1 300px", dots_at_index=True,
                              legend=names)
        self.widget = panel_row(*self.fits, self.mse)
        self.widget.add_class("minimaml-figure")
        self.split = split

    def link(self, steps_slider: Any) -> None:
        """The steps slider picks the frame, in the browser."""
        from .frames import link_index
        link_index((steps_slider, "value"), *self.fits, self.mse)

    def show_adaptations(self, task: Any, shots: int, adaptations: dict[str, Any]) -> None:
        """New task, K or α: send every step of every init (the browser keeps them)."""
        names = list(self.colors)
        curves = {n: clipped(adaptations[n]) for n in names}
        truth = task.amplitude * np.sin(GRID[:, 0] - task.phase)
        for fit, group in zip(self.fits, self.groups):
            with fit.hold_sync():
                fit.set_static([truth], ["black"])
                fit.set_points(task.support_x[:shots, 0], task.support_y[:shots, 0])
                fit.set_frames(np.stack([curves[n][0] for n in group], axis=1))
        self.mse.set_static([curves[n][1] for n in names], [self.colors[n] for n in names],
                            [1.5] * len(names))

    def update(self, task: Any, shots: int, inner_lr: float, steps: int,
               current: dict[str, Any], diverged: list) -> None:
        """Nothing to send: the browser draws the step the slider shows."""

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
