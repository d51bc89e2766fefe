"""Chapter 8's widget: the same sinusoid task adapted from each family member's θ, side by side.

Every variant of :mod:`minimaml.family` meta-learned on the paper's sinusoid config
(the shipped ``minimaml/data/family_sinusoid.npz``, written by
``benchmarks/family_results.py``) fine-tunes on the same K support points, its own way:
plain SGD for MAML, FOMAML, Reptile and iMAML, the head only for ANIL, the learned
rates for Meta-SGD and MAML++. The α slider scales every variant's own rate by
α / 0.01: at α = 0.01 each fine-tunes exactly as it was meta-tested (MAML at 0.01,
iMAML at the 0.002 it trained with, Meta-SGD and MAML++ with what they learned).

    from minimaml.widgets.family import family_widget
    family_widget()

As in the playground (:mod:`.sinusoid_adaptation`), the support set is padded to
``MAX_SHOTS`` points with a mask and every run keeps its whole ``MAX_STEPS``
trajectory, so moving a slider never recompiles.
"""
import base64
import importlib.resources
import io
import json
from functools import partial
from typing import Any

import ipywidgets as widgets
import jax
import numpy as np

from .. import npz
from ..checks import check_adapt, check_choice, check_int, check_number
from ..family import ALGORITHMS, Learned, last_layer
from ..maml import _inner_loop
from ..nets import mlp_apply
from ..sinusoid import INPUT_RANGE, SineTasks, sine, sine_loss
from .canvas import BlitFigure
from .sinusoid_adaptation import (GRID, INNER_LR_RANGE, MAX_SHOTS, MAX_STEPS, MSE_CLIP, Y_CLIP,
                                  Y_LIMIT, sample_task)

TRAINED_INNER_LR = 0.01     # the slider's α at which every variant uses its own rate
COLORS = dict(zip(ALGORITHMS, ("tab:blue", "tab:cyan", "tab:purple", "tab:olive", "tab:red",
                               "tab:green", "tab:brown")))


def shipped_learners() -> dict[str, Learned]:
    """Each shipped variant as a :class:`minimaml.family.Learned` (θ and how it fine-tunes),
    in :data:`minimaml.family.ALGORITHMS` order. See ``minimaml/data/README.md``."""
    data = importlib.resources.files("minimaml") / "data"
    with importlib.resources.as_file(data / "family_sinusoid.npz") as path:
        shipped, _ = npz.load(path)
    learners = {}
    for name in ALGORITHMS:
        if name not in shipped["params"]:
            continue
        params = jax.tree.map(jax.numpy.asarray, shipped["params"][name])
        rates = shipped.get("inner_lr", {}).get(name)
        own_lr = float(shipped.get("finetune_lr", {}).get(name, TRAINED_INNER_LR))
        if name == "metasgd":
            learners[name] = Learned(params, jax.tree.map(jax.numpy.asarray, rates),
                                     learned_lr=True)
        elif name == "mamlpp":
            learners[name] = Learned(params, jax.tree.map(jax.numpy.asarray, rates),
                                     lr_per_step=True, learned_lr=True)
        else:
            adapt = check_adapt(params, last_layer(params)) if name == "anil" else None
            learners[name] = Learned(params, own_lr, adapt)
    return learners


def shipped_results() -> dict[str, Any]:
    """The benchmark tables behind the shipped θs (``minimaml/data/family_*.json``)."""
    data = importlib.resources.files("minimaml") / "data"
    return {name: json.loads((data / f"family_{name}.json").read_text())
            for name in ("sinusoid", "omniglot") if (data / f"family_{name}.json").is_file()}


@partial(jax.jit, static_argnames=("adapt", "lr_per_step"))
def _adapt(params, rates, support_x, support_y, support_mask, query_x, query_y, *, adapt,
           lr_per_step):
    # One compilation per variant's structure; rates, the task and K are traced.
    _, trajectory = _inner_loop(params, sine_loss, (support_x, support_y, support_mask), rates,
                                MAX_STEPS, trajectory=True, adapt=adapt,
                                lr_per_step=lr_per_step)
    predictions = jax.vmap(mlp_apply, in_axes=(0, None))(trajectory.params, GRID)[..., 0]
    query_mse = jax.vmap(sine_loss, in_axes=(0, None))(trajectory.params, (query_x, query_y))
    return predictions, query_mse


def adapt(learned: Learned, task: SineTasks, shots: int,
          inner_lr: float) -> tuple[np.ndarray, np.ndarray]:
    """Fine-tune ``learned`` on the first ``shots`` support points of ``task`` for MAX_STEPS
    steps its way, its rates (fixed or learned) scaled by ``inner_lr / 0.01``. Returns (predictions on GRID: (MAX_STEPS + 1, len(GRID)),
    query MSE: (MAX_STEPS + 1,)), numpy; values may be inf/NaN when α is too large."""
    check_int(shots, "shots (K)", 1, MAX_SHOTS)
    check_number(inner_lr, "inner_lr", *INNER_LR_RANGE)
    scale = np.float32(inner_lr / TRAINED_INNER_LR)
    if learned.learned_lr:
        rates = jax.tree.map(lambda r: r * scale, learned.rates(MAX_STEPS))
    else:
        rates = np.float32(learned.inner_lr) * scale
    mask = (np.arange(MAX_SHOTS) < shots).astype(np.float32)
    out = _adapt(learned.params, rates, task.support_x, task.support_y, mask, task.query_x,
                 task.query_y, adapt=learned.adapt, lr_per_step=learned.lr_per_step)
    return tuple(map(np.asarray, jax.device_get(out)))


class FamilyFigure(BlitFigure):
    """One panel per variant (truth, support points, the fit after n steps) and one of
    query MSE against steps for all of them."""

    def __init__(self, names: tuple[str, ...]):
        super().__init__(figsize=(10.0, 4.6), dpi=80)
        fig = self.figure
        cols = 4
        axes = fig.subplots(2, cols, sharex=False).ravel()
        fig.subplots_adjust(left=0.04, right=0.99, bottom=0.08, top=0.93, wspace=0.25,
                            hspace=0.35)
        x = GRID[:, 0]
        self.truth, self.support, self.fit, self.titles = {}, {}, {}, {}
        for ax, name in zip(axes, names):
            self.truth[name], = ax.plot(x, x, "k-", lw=1.5, animated=True)
            self.support[name], = ax.plot([], [], "k^", ms=5, animated=True)
            self.fit[name], = ax.plot(x, x, color=COLORS[name], lw=1.8, animated=True)
            self.titles[name] = ax.set_title(name, fontsize=9, animated=True)
            ax.set(xlim=INPUT_RANGE, ylim=(-Y_LIMIT, Y_LIMIT))
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        ax_mse = axes[len(names)] if len(names) < len(axes) else None
        self.curves, self.marker = {}, None
        if ax_mse is not None:
            steps = np.arange(MAX_STEPS + 1)
            for name in names:
                self.curves[name], = ax_mse.plot(steps, steps + 1.0, color=COLORS[name],
                                                 lw=1.2, animated=True)
            self.marker = ax_mse.axvline(0, color="k", lw=0.8, animated=True)
            ax_mse.set(yscale="log", ylim=MSE_CLIP, xlim=(0, MAX_STEPS))
            ax_mse.set_title("query MSE vs steps", fontsize=9)
            ax_mse.tick_params(labelsize=7)
            ax_mse.grid(alpha=0.3)
        for ax in axes[len(names) + 1:]:
            ax.set_visible(False)
        self.animated = [*self.truth.values(), *self.support.values(), *self.fit.values(),
                         *self.titles.values(), *self.curves.values(),
                         *([self.marker] if self.marker is not None else [])]


class FamilyWidget:
    """The widget: K, α and steps sliders, a new-task button, and :class:`FamilyFigure`."""

    def __init__(self, learners: dict[str, Learned], seed: int = 0):
        self.learners, self.seed, self.task_index = learners, seed, 0
        self.figure = FamilyFigure(tuple(learners))
        style = {"description_width": "60px"}
        self.shots_slider = widgets.IntSlider(10, 1, MAX_SHOTS, description="K", style=style)
        self.inner_lr_slider = widgets.FloatLogSlider(
            TRAINED_INNER_LR, base=10, min=np.log10(INNER_LR_RANGE[0]),
            max=np.log10(INNER_LR_RANGE[1]), step=0.05, description="α", readout_format=".3g",
            style=style)
        self.steps_slider = widgets.IntSlider(1, 0, MAX_STEPS, description="steps", style=style)
        self.new_task = widgets.Button(description="new task")
        self.readout = widgets.HTML()
        self.new_task.on_click(lambda _: self.next_task())
        self.shots_slider.observe(lambda _: self.recompute(), "value")
        self.inner_lr_slider.observe(lambda _: self.recompute(), "value")
        self.steps_slider.observe(lambda _: self.redraw(), "value")
        self.task = sample_task(self.seed, self.task_index)
        self.figure.show()
        self.recompute()

    def next_task(self) -> None:
        self.task_index += 1
        self.task = sample_task(self.seed, self.task_index)
        self.recompute()

    def recompute(self) -> None:
        """Adapt every variant for all MAX_STEPS steps at the current K and α."""
        self.results = {name: adapt(learned, self.task, self.shots_slider.value,
                                    self.inner_lr_slider.value)
                        for name, learned in self.learners.items()}
        self.redraw()

    def redraw(self) -> None:
        """Show the fits after the chosen number of steps (no JAX involved)."""
        f, k, n = self.figure, self.shots_slider.value, self.steps_slider.value
        truth = sine(GRID[:, 0], self.task.amplitude, self.task.phase)
        rows = []
        for name, (predictions, query_mse) in self.results.items():
            f.truth[name].set_ydata(truth)
            f.support[name].set_data(self.task.support_x[:k, 0], self.task.support_y[:k, 0])
            fit = np.nan_to_num(predictions[n], nan=Y_CLIP, posinf=Y_CLIP, neginf=-Y_CLIP)
            f.fit[name].set_ydata(np.clip(fit, -Y_CLIP, Y_CLIP))
            mse = float(query_mse[n])
            shown = f"{mse:.3f}" if np.isfinite(mse) and mse < 1e3 else "diverged"
            f.titles[name].set_text(f"{name}: MSE {shown}")
            if name in f.curves:
                curve = np.nan_to_num(query_mse, nan=MSE_CLIP[1], posinf=MSE_CLIP[1])
                f.curves[name].set_ydata(np.clip(curve, *MSE_CLIP))
            rows.append(f"<td style='color:{COLORS[name]}'>{name}</td><td>{shown}</td>")
        if f.marker is not None:
            f.marker.set_xdata([n, n])
        self.readout.value = ("<table><tr><th>variant</th><th>query MSE after "
                              f"{n} step{'s' * (n != 1)}</th></tr><tr>"
                              + "</tr><tr>".join(rows) + "</tr></table>")
        f.blit()

    def widget(self) -> widgets.Widget:
        controls = widgets.VBox([self.shots_slider, self.inner_lr_slider, self.steps_slider,
                                 self.new_task, self.readout])
        return widgets.HBox([self.figure.canvas, controls])

    def still_png(self) -> bytes:
        """A PNG of what the widget shows now (for a saved notebook without a kernel), drawn
        on its own figure so that the live canvas's blitting is left alone."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        k, n = self.shots_slider.value, self.steps_slider.value
        figure = Figure(figsize=(10.0, 4.6), dpi=80)
        FigureCanvasAgg(figure)
        axes = figure.subplots(2, 4).ravel()
        x, truth = GRID[:, 0], sine(GRID[:, 0], self.task.amplitude, self.task.phase)
        for ax, (name, (predictions, query_mse)) in zip(axes, self.results.items()):
            fit = np.nan_to_num(predictions[n], nan=Y_CLIP, posinf=Y_CLIP, neginf=-Y_CLIP)
            ax.plot(x, truth, "k-", lw=1.5)
            ax.plot(self.task.support_x[:k, 0], self.task.support_y[:k, 0], "k^", ms=5)
            ax.plot(x, np.clip(fit, -Y_CLIP, Y_CLIP), color=COLORS[name], lw=1.8)
            mse = float(query_mse[n])
            ax.set_title(f"{name}: MSE " + (f"{mse:.3f}" if np.isfinite(mse) and mse < 1e3
                                             else "diverged"), fontsize=9)
            ax.set(xlim=INPUT_RANGE, ylim=(-Y_LIMIT, Y_LIMIT))
            ax.tick_params(labelsize=7)
        for ax in axes[len(self.results):]:
            ax.set_visible(False)
        figure.suptitle(f"task {self.task_index} · K = {k} · α = "
                        f"{self.inner_lr_slider.value:#.3g} · {n} step{'s' * (n != 1)}",
                        fontsize=10)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = self.widget()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle or {})
        bundle["image/png"] = base64.b64encode(self.still_png()).decode()
        return bundle


def family_widget(learners: dict[str, Learned] | None = None, seed: int = 0,
                  only: tuple[str, ...] | None = None) -> FamilyWidget:
    """The side-by-side widget for ``learners`` (default: the shipped variants), on the
    task sequence of ``seed``; ``only`` keeps some of them (names from ALGORITHMS)."""
    learners = shipped_learners() if learners is None else dict(learners)
    if only is not None:
        for name in only:
            check_choice(name, "only", tuple(learners))
        learners = {name: learners[name] for name in only}
    if not 1 <= len(learners) <= 7:
        raise ValueError(f"learners must hold 1 to 7 variants; got {len(learners)}")
    return FamilyWidget(learners, check_int(seed, "seed", 0))
