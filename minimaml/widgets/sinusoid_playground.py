"""The live adaptation playground: move K, α and the step count, watch networks fine-tune.

On one sinusoid task, three starting points adapt side by side with plain SGD on the
same K support points: MAML's meta-learned initialisation, the pretrained baseline
and a random initialisation. The figure shows the true function, the support points,
each network's prediction after n steps, and each one's query MSE at every step.

    from minimaml.widgets import playground
    playground()                                  # the shipped paper-config parameters
    playground(maml_params=my_params, seed=3)     # parameters you meta-trained yourself

The numbers come from :mod:`.sinusoid_adaptation` (no recompilation when a control
moves); the browser draws them and follows the steps slider by itself
(:mod:`.sinusoid_figures`, :mod:`.frames`), or, with
``renderer="ipympl"``, matplotlib draws whole frames in the kernel
(:mod:`.playground_ipympl`). BENCHMARKS.md has the measured control-to-pixels latency
of both.
"""
import math
from typing import Any

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np

from ..checks import check_choice, check_int, check_number
from ..sinusoid import init_params
from ..types import PyTree
from .live import LiveWidget, button, control_row, slider_layout
from .sinusoid_adaptation import (DIVERGED_MSE, INNER_LR_RANGE, MAX_SHOTS, MAX_STEPS,
                                  QUERY_POINTS, Adaptation, _dispatch, check_params,
                                  load_shipped_params, sample_task, view)
from .sinusoid_figures import (COLORS, LiveAdaptationFigure, draw_adaptation,
                               legend_html, settings_text)

RENDERERS = ("browser", "ipympl")

class Playground(LiveWidget):
    """The playground widget; build it with :func:`playground`.

    Controls (ipywidgets, all public attributes): ``shots_slider`` (K),
    ``inner_lr_slider`` (α, log scale), ``steps_slider``, ``play`` (animates the
    steps slider 0 → MAX_STEPS), ``new_task_button``. Readouts: ``readout`` (each
    network's query MSE at the current step), ``note`` (a warning when fine-tuning
    diverged), ``drawing`` (the panels). ``current[name]`` holds the :class:`PlotData`
    drawn for each of ``INITS``.
    """

    def __init__(self, inits: dict[str, PyTree], *, seed: int = 0, shots: int = 10,
                 inner_lr: float = 0.01, steps: int = 10, renderer: str = "browser",
                 colors: dict[str, str] | None = None, split: bool = False,
                 name: str = "playground", caption: str = ""):
        self.inits = dict(inits)
        self.colors = dict(colors or {n: COLORS[n] for n in self.inits})
        self.seed = int(seed)
        self.task_index = 0
        self.task = sample_task(self.seed, 0)
        self.adaptations: dict[str, Adaptation] = {}
        self.current: dict[str, Any] = {}

        self.shots_slider = slider_layout(widgets.IntSlider(
            value=shots, min=1, max=MAX_SHOTS, description="K (points)",
            tooltip="K: how many labelled points of the task the networks fine-tune on"),
            "shots")
        self.inner_lr_slider = slider_layout(widgets.FloatLogSlider(
            value=inner_lr, base=10, min=math.log10(INNER_LR_RANGE[0]),
            max=math.log10(INNER_LR_RANGE[1]), step=0.05, description="α (step size)",
            readout_format=".3g", tooltip="α: the fine-tuning SGD step size (log scale)"),
            "inner-lr")
        self.steps_slider = slider_layout(widgets.IntSlider(
            value=steps, min=0, max=MAX_STEPS, description="steps",
            tooltip="how many SGD steps each network has taken"), "steps")
        self.play = widgets.Play(value=steps, min=0, max=MAX_STEPS, interval=150,
                                 tooltip="▶ play the steps 0 → 50 · ⏸ pause · ⏹ stop · "
                                         "↻ repeat", layout=widgets.Layout(flex="0 0 auto"))
        self.play.add_class("minimaml-play")
        widgets.jslink((self.play, "value"), (self.steps_slider, "value"))
        self.new_task_button = button("new task", "draw another sinusoid (amplitude, phase, "
                                      "points) from p(T)", "new-task", icon="refresh")
        self.readout = widgets.HTML().add_class("minimaml-readout")
        self.note = widgets.HTML().add_class("minimaml-note")
        if renderer == "ipympl":
            from .playground_ipympl import AdaptationFigure
            self.drawing = AdaptationFigure()
        else:
            self.drawing = LiveAdaptationFigure(self.colors, split=split)
            self.drawing.link(self.steps_slider)
        self.split = split
        self.renderer = renderer
        self.caption = widgets.HTML(caption).add_class("minimaml-caption")
        super().__init__([
            self.caption, control_row(self.shots_slider, self.inner_lr_slider),
            control_row(self.steps_slider, self.play, self.new_task_button),
            widgets.HTML(legend_html(self.colors)), self.drawing.widget, self.readout,
            self.note], name=name)
        self.start(self._first_draw, "the 50-step fine-tuning of three networks")

    def _first_draw(self) -> None:
        self._adapt_all()
        self._update()
        if self.renderer == "ipympl":
            self.drawing.show()
        self.shots_slider.observe(self._on_settings, names="value")
        self.inner_lr_slider.observe(self._on_settings, names="value")
        self.steps_slider.observe(self._on_steps, names="value")
        self.new_task_button.on_click(self._on_new_task)

    # -- state --
    def _adapt_all(self) -> None:
        shots, inner_lr = self.shots_slider.value, self.inner_lr_slider.value
        # Start all three before waiting for any (JAX dispatches asynchronously, so
        # they can share the cores); stacking them into one vmapped call was no faster.
        pending = {name: _dispatch(params, self.task, shots, inner_lr)
                   for name, params in self.inits.items()}
        self.adaptations = {name: Adaptation(*out)
                            for name, out in jax.device_get(pending).items()}
        if self.renderer != "ipympl":
            self.drawing.show_adaptations(self.task, shots, self.adaptations)

    def _diverged(self) -> list:
        steps = self.steps_slider.value
        return [(name, data.diverged_at) for name, data in self.current.items()
                if data.diverged_at is not None and data.diverged_at <= steps]

    def _update(self) -> None:
        steps, shots = self.steps_slider.value, self.shots_slider.value
        self.current = {name: view(a, steps) for name, a in self.adaptations.items()}
        diverged = self._diverged()
        self.drawing.update(self.task, shots, self.inner_lr_slider.value, steps,
                            self.current, diverged)
        self.readout.value = self._readout_html(steps, shots)
        self.note.value = self._note_html(diverged)

    def _readout_html(self, steps: int, shots: int) -> str:
        cells = []
        for name, data in self.current.items():
            diverged = data.diverged_at is not None and data.diverged_at <= steps
            value = "diverged" if diverged else f"{data.query_mse:.3g}"
            cells.append(f"<span style='color:{self.colors[name]}'><b>{name}</b></span> "
                         f"<span class='minimaml-mse'>{value}</span>")
        task = f"task A = {self.task.amplitude:.2f}, φ = {self.task.phase:.2f}"
        return (f"Query MSE on {QUERY_POINTS} fresh points of this {task} after "
                f"{settings_text(shots, self.inner_lr_slider.value, steps)}: "
                + " &nbsp;·&nbsp; ".join(cells))

    def _note_html(self, diverged: list) -> str:
        if not diverged:
            return ""
        which = ", ".join(f"{name} (from step {step})" for name, step in diverged)
        return (f"<div style='color:#b00000'><b>⚠ diverged:</b> fine-tuning blew up for "
                f"{which}: the query MSE passed {DIVERGED_MSE:g} or stopped being a number. "
                f"α = {self.inner_lr_slider.value:#.3g} is too large a step for these "
                f"networks; try a smaller α. Their lines run along the plot's edge, clipped "
                f"to the visible range.</div>")

    # -- events --
    def _on_settings(self, change: Any) -> None:
        self._adapt_all()
        self._update()
        self.drawing.sync()

    def _on_steps(self, change: Any) -> None:
        self._update()
        self.drawing.sync()

    def _on_new_task(self, button: Any = None) -> None:
        self.task_index += 1
        self.task = sample_task(self.seed, self.task_index)
        self._on_settings(None)

    def still_figure(self) -> Any:
        from matplotlib.figure import Figure
        return draw_adaptation(Figure(figsize=(9.0, 3.6)), self.task,
                               self.shots_slider.value, self.inner_lr_slider.value,
                               self.steps_slider.value, self.current, self._diverged(),
                               self.colors, self.split)

    def snapshot_png(self) -> bytes:
        """The still picture of what the widget shows now, as PNG bytes."""
        return self.still_png()


def playground(maml_params: PyTree | None = None, pretrained_params: PyTree | None = None,
               random_params: PyTree | None = None, *, seed: int = 0, shots: int = 10,
               inner_lr: float = 0.01, steps: int = 10, renderer: str = "browser") -> Playground:
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
      renderer: "browser" (the browser draws the panels from the numbers and picks the
        step itself) or "ipympl" (matplotlib draws each frame in the kernel and ships it
        as a PNG; slower, kept for comparison).

    Returns:
      a :class:`Playground` (an ``ipywidgets.VBox``); display it in JupyterLab.
    """
    check_choice(renderer, "renderer", RENDERERS)
    check_int(seed, "seed", 0, 2**31 - 1)
    check_int(shots, "shots (K)", 1, MAX_SHOTS)
    check_int(steps, "steps", 0, MAX_STEPS)
    inner_lr = check_number(inner_lr, "inner_lr (α)", *INNER_LR_RANGE)
    shipped = [name for name, p in (("MAML", maml_params), ("pretrained", pretrained_params))
               if p is None]
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
    caption = (f"<i>{' and '.join(shipped)} θ: the shipped paper-config parameters "
               f"(minimaml/data/, 70,000 meta-steps).</i>" if shipped else "")
    return Playground(inits, seed=int(seed), shots=int(shots), inner_lr=inner_lr,
                      steps=int(steps), renderer=renderer, caption=caption)
