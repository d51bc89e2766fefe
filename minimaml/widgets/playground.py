"""The live adaptation playground: move K, α and the step count, watch networks fine-tune.

On one sinusoid task, three starting points adapt side by side with plain SGD on the
same K support points: MAML's meta-learned initialisation, the pretrained baseline
and a random initialisation. The figure shows the true function, the support points,
each network's prediction after n steps, and each one's query MSE at every step.

    from minimaml.widgets import playground
    playground()                                  # the shipped paper-config parameters
    playground(maml_params=my_params, seed=3)     # parameters you meta-trained yourself

The numbers come from :mod:`.sinusoid_adaptation` (no recompilation when a control
moves); only the lines are redrawn (:class:`.canvas.BlitFigure`). BENCHMARKS.md has the
measured control-to-figure latency.
"""
import math
from typing import Any

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np

from ..checks import check_int, check_number
from ..sinusoid import INPUT_RANGE, init_params
from ..types import PyTree
from .canvas import BlitFigure
from .sinusoid_adaptation import (DIVERGED_MSE, GRID, INNER_LR_RANGE, MAX_SHOTS, MAX_STEPS,
                                  QUERY_POINTS, Y_LIMIT, Adaptation, _dispatch, check_params,
                                  load_shipped_params, sample_task, view)

INITS = ("MAML", "pretrained", "random")
COLORS = {"MAML": "tab:blue", "pretrained": "tab:orange", "random": "tab:green"}


class AdaptationFigure(BlitFigure):
    """The playground's figure: the fits on the left, query MSE per step on the right."""

    def __init__(self):
        super().__init__(figsize=(9.0, 3.4), dpi=80)
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
        self.diverged_text = ax.text(0.5, 0.5, "", transform=ax.transAxes, ha="center",
                                     va="center", fontsize=16, color="tab:red",
                                     weight="bold", animated=True)
        ax.set_xlim(*INPUT_RANGE)
        ax.set_ylim(-Y_LIMIT, Y_LIMIT)
        ax.set_xlabel("x")
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
        ax_mse.set_ylim(1e-3, 1e2)
        ax_mse.set_xlabel("fine-tuning steps")
        ax_mse.set_ylabel("query MSE", labelpad=1)
        ax_mse.grid(alpha=0.3)
        self.animated = [self.truth_line, self.support_dots, *self.pred_lines.values(),
                         *self.mse_lines.values(), *self.mse_dots.values(), self.step_marker,
                         self.task_text, self.diverged_text]

    def update(self, task: Any, shots: int, steps: int, current: dict[str, Any],
               diverged: list) -> None:
        """Set every moving artist for this task, K, step and per-init :class:`PlotData`."""
        self.truth_line.set_ydata(task.amplitude * np.sin(GRID[:, 0] - task.phase))
        self.support_dots.set_data(task.support_x[:shots, 0], task.support_y[:shots, 0])
        self.task_text.set_text(f"A = {task.amplitude:.2f}, φ = {task.phase:.2f}")
        self.step_marker.set_xdata([steps, steps])
        for name, data in current.items():
            self.pred_lines[name].set_ydata(data.predictions)
            self.mse_lines[name].set_ydata(data.mse_curve)
            self.mse_dots[name].set_data([steps], [data.mse_curve[steps]])
        self.diverged_text.set_text("diverged: α too large" if diverged else "")


class Playground(widgets.VBox):
    """The playground widget; build it with :func:`playground`.

    Controls (ipywidgets, all public attributes): ``shots_slider`` (K),
    ``inner_lr_slider`` (α, log scale), ``steps_slider``, ``play`` (animates the
    steps slider 0 → MAX_STEPS), ``new_task_button``. Readouts: ``readout`` (each
    network's query MSE at the current step), ``note`` (a warning when fine-tuning
    diverged), ``figure`` (the matplotlib figure on an ipympl canvas).
    ``current[name]`` holds the :class:`PlotData` drawn for each of ``INITS``.
    """

    def __init__(self, inits: dict[str, PyTree], *, seed: int = 0, shots: int = 10,
                 inner_lr: float = 0.01, steps: int = 10):
        self.inits = dict(inits)
        self.seed = int(seed)
        self.task_index = 0
        self.task = sample_task(self.seed, 0)
        self.adaptations: dict[str, Adaptation] = {}
        self.current: dict[str, Any] = {}

        self.shots_slider = widgets.IntSlider(
            value=shots, min=1, max=MAX_SHOTS, description="K (points)")
        self.inner_lr_slider = widgets.FloatLogSlider(
            value=inner_lr, base=10, min=math.log10(INNER_LR_RANGE[0]),
            max=math.log10(INNER_LR_RANGE[1]), step=0.05, description="α (step size)",
            readout_format=".3g")
        self.steps_slider = widgets.IntSlider(
            value=steps, min=0, max=MAX_STEPS, description="steps")
        self.play = widgets.Play(value=steps, min=0, max=MAX_STEPS, interval=150,
                                 description="animate the steps")
        widgets.jslink((self.play, "value"), (self.steps_slider, "value"))
        self.new_task_button = widgets.Button(description="new task", icon="refresh")
        for control, css in ((self.shots_slider, "shots"), (self.inner_lr_slider, "inner-lr"),
                             (self.steps_slider, "steps"), (self.new_task_button, "new-task")):
            control.style.description_width = "initial"
            control.add_class(f"minimaml-{css}")
        self.readout = widgets.HTML().add_class("minimaml-readout")
        self.note = widgets.HTML().add_class("minimaml-note")

        self.drawing = AdaptationFigure()
        self.figure = self.drawing.figure
        self._adapt_all()
        self._update()
        self.drawing.show()

        self.shots_slider.observe(self._on_settings, names="value")
        self.inner_lr_slider.observe(self._on_settings, names="value")
        self.steps_slider.observe(self._on_steps, names="value")
        self.new_task_button.on_click(self._on_new_task)
        super().__init__([
            widgets.HBox([self.shots_slider, self.inner_lr_slider]),
            widgets.HBox([self.steps_slider, self.play, self.new_task_button]),
            self.drawing.canvas, self.readout, self.note])

    # -- state --
    def _adapt_all(self) -> None:
        shots, inner_lr = self.shots_slider.value, self.inner_lr_slider.value
        # Start all three before waiting for any (JAX dispatches asynchronously, so
        # they can share the cores); stacking them into one vmapped call was no faster.
        pending = {name: _dispatch(params, self.task, shots, inner_lr)
                   for name, params in self.inits.items()}
        self.adaptations = {name: Adaptation(*out)
                            for name, out in jax.device_get(pending).items()}

    def _update(self) -> None:
        steps, shots = self.steps_slider.value, self.shots_slider.value
        self.current = {name: view(a, steps) for name, a in self.adaptations.items()}
        diverged = [(name, data.diverged_at) for name, data in self.current.items()
                    if data.diverged_at is not None and data.diverged_at <= steps]
        self.drawing.update(self.task, shots, steps, self.current, diverged)
        self.readout.value = self._readout_html(steps, shots)
        self.note.value = self._note_html(diverged)

    def _readout_html(self, steps: int, shots: int) -> str:
        cells = []
        for name, data in self.current.items():
            diverged = data.diverged_at is not None and data.diverged_at <= steps
            value = "diverged" if diverged else f"{data.query_mse:.3g}"
            cells.append(f"<span style='color:{COLORS[name]}'><b>{name}</b></span> "
                         f"<span class='minimaml-mse'>{value}</span>")
        return (f"Query MSE on {QUERY_POINTS} fresh points of this task after {steps} "
                f"step{'s' * (steps != 1)} on K = {shots}, α = "
                f"{self.inner_lr_slider.value:.3g}: " + " &nbsp;·&nbsp; ".join(cells))

    def _note_html(self, diverged: list) -> str:
        if not diverged:
            return ""
        which = ", ".join(f"{name} (from step {step})" for name, step in diverged)
        return (f"<div style='color:#b00000'><b>⚠ diverged:</b> fine-tuning blew up for "
                f"{which}: the query MSE passed {DIVERGED_MSE:g} or stopped being a number. "
                f"α = {self.inner_lr_slider.value:.3g} is too large a step for these "
                f"networks; try a smaller α. Lines are clipped to stay on the plot.</div>")

    # -- events --
    def _on_settings(self, change: Any) -> None:
        self._adapt_all()
        self._update()
        self.drawing.blit()

    def _on_steps(self, change: Any) -> None:
        self._update()
        self.drawing.blit()

    def _on_new_task(self, button: Any = None) -> None:
        self.task_index += 1
        self.task = sample_task(self.seed, self.task_index)
        self._on_settings(None)

    def snapshot_png(self) -> bytes:
        """The figure as it is drawn now, as PNG bytes."""
        return self.drawing.png()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict:
        # A static picture beside the live widget, for viewers without a kernel.
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        return {**bundle, "image/png": self.drawing.png_base64(),
                "text/plain": "minimaml playground (live in JupyterLab with a running kernel)"}


def playground(maml_params: PyTree | None = None, pretrained_params: PyTree | None = None,
               random_params: PyTree | None = None, *, seed: int = 0, shots: int = 10,
               inner_lr: float = 0.01, steps: int = 10) -> Playground:
    """The live adaptation playground on a sinusoid task, as an ipywidgets widget.

    Args:
      maml_params, pretrained_params: MLP parameters (``sinusoid.init_params`` shape,
        any hidden sizes); ``None`` uses the shipped paper-config ones
        (:func:`load_shipped_params`).
      random_params: the "random" initialisation; ``None`` draws a fresh one shaped
        like ``maml_params`` from ``seed``.
      seed: picks the task sequence (and the random initialisation).
      shots, inner_lr, steps: the controls' starting values, K in 1..MAX_SHOTS,
        α in INNER_LR_RANGE, steps in 0..MAX_STEPS.

    Returns:
      a :class:`Playground` (an ``ipywidgets.VBox``); display it in JupyterLab.
    """
    check_int(seed, "seed", 0, 2**31 - 1)
    check_int(shots, "shots (K)", 1, MAX_SHOTS)
    check_int(steps, "steps", 0, MAX_STEPS)
    inner_lr = check_number(inner_lr, "inner_lr (α)", *INNER_LR_RANGE)
    if maml_params is None or pretrained_params is None:
        shipped_maml, shipped_pretrained = load_shipped_params()
        maml_params = shipped_maml if maml_params is None else maml_params
        pretrained_params = shipped_pretrained if pretrained_params is None \
            else pretrained_params
    check_params(maml_params, "maml_params")
    check_params(pretrained_params, "pretrained_params")
    if random_params is None:
        hidden = tuple(int(np.shape(layer["w"])[1]) for layer in maml_params[:-1])
        random_params = init_params(jax.random.fold_in(jax.random.key(seed), 1), hidden)
    check_params(random_params, "random_params")
    inits = {"MAML": maml_params, "pretrained": pretrained_params, "random": random_params}
    inits = {name: jax.tree.map(jnp.asarray, params) for name, params in inits.items()}
    return Playground(inits, seed=int(seed), shots=int(shots), inner_lr=inner_lr,
                      steps=int(steps))
