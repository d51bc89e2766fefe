"""Chapter 3's widget: scrub along a meta-training run and watch θ learn to learn.

    from minimaml.widgets import meta_training_scrubber
    meta_training_scrubber()

θ was saved at meta-steps 0, 100, 300, 1k, 3k, 10k and 70k of the paper-config
sinusoid run (``minimaml/data/sinusoid_maml_snapshots.npz``). For the θ under the
slider the widget shows its fits to one task after 0, 1 and 5 SGD steps on K = 10
points, and its meta-test curve (query MSE against fine-tuning steps, averaged over
fixed fresh tasks) among those of the other snapshots. Everything is computed for all
snapshots when the widget starts or the task changes (one compiled call each), so the
slider only picks.
"""
import importlib.resources
from typing import Any

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np

from .. import npz
from ..checks import check_int
from ..evaluate import finetune_curves
from ..maml import inner_loop
from ..nets import mlp_apply
from ..sinusoid import INPUT_RANGE, sample_tasks, sine_loss
from ..types import PyTree
from .frames import FramePanel, link_index
from .live import LiveWidget, button, control_row, panel_row
from .sinusoid_adaptation import GRID, Y_LIMIT, sample_task

SNAPSHOT_STEPS = (0, 100, 300, 1_000, 3_000, 10_000, 70_000)
FIT_STEPS = (0, 1, 5)
FIT_COLORS = ("#9ecae1", "#4292c6", "#08306b")
SHOTS, INNER_LR, TEST_STEPS, TEST_TASKS = 10, 0.01, 10, 100
TEST_RANGE = (1e-2, 10.0)


def load_snapshots() -> tuple[tuple[int, ...], PyTree]:
    """``(steps, params)``: the shipped θ of one run, stacked (leading axis: snapshot)."""
    data = importlib.resources.files("minimaml") / "data"
    with importlib.resources.as_file(data / "sinusoid_maml_snapshots.npz") as path:
        tree, extra = npz.load(path)
    steps = tuple(int(s) for s in extra["steps"])
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *(tree[f"step{s}"] for s in steps))
    return steps, stacked


def step_label(step: int) -> str:
    return f"{step // 1000}k" if step >= 1000 else str(step)


@jax.jit
def _fits(stacked, support_x, support_y, query_x, query_y):
    """Predictions on GRID and query MSE after FIT_STEPS steps, for every snapshot."""
    def one(params):
        _, trajectory = inner_loop(params, sine_loss, (support_x, support_y), INNER_LR,
                                   max(FIT_STEPS), trajectory=True)
        picked = jax.tree.map(lambda a: a[jnp.array(FIT_STEPS)], trajectory.params)
        predictions = jax.vmap(mlp_apply, in_axes=(0, None))(picked, GRID)[..., 0]
        mse = jax.vmap(sine_loss, in_axes=(0, None))(picked, (query_x, query_y))
        return predictions, mse
    return jax.vmap(one)(stacked)


class MetaTrainingScrubber(LiveWidget):
    """Controls: ``snapshot_slider`` (which θ; the panels follow it in the browser),
    ``new_task_button``. Panels: ``fit``, ``test`` (:class:`.frames.FramePanel`). ``test_curves``:
    (snapshots, TEST_STEPS + 1) meta-test query MSE; ``predictions``: (snapshots,
    len(FIT_STEPS), len(GRID)); ``fit_mse``: (snapshots, len(FIT_STEPS))."""

    def __init__(self, steps: tuple[int, ...], stacked: PyTree, *, seed: int, caption: str):
        self.steps, self.stacked, self.seed, self.task_index = steps, stacked, seed, 0
        self.snapshot_slider = widgets.SelectionSlider(
            options=[(step_label(s), i) for i, s in enumerate(steps)], value=len(steps) - 1,
            description="θ after meta-step", tooltip="which saved θ of the meta-training run",
            layout=widgets.Layout(width="auto", min_width="300px", flex="1 1 400px",
                                  max_width="560px"), style={"description_width": "initial"})
        self.snapshot_slider.add_class("minimaml-snapshot")
        self.new_task_button = button("new task", "draw another sinusoid to adapt to",
                                      "new-task", icon="refresh")
        self.fit = FramePanel(GRID[:, 0], x_range=INPUT_RANGE, y_range=(-Y_LIMIT, Y_LIMIT),
                              x_label="x", y_label="y", flex="1.4 1 420px")
        self.fit.frame_colors = list(FIT_COLORS)
        self.test = FramePanel(np.arange(TEST_STEPS + 1), x_range=(0, TEST_STEPS),
                               y_range=TEST_RANGE, log_y=True, x_label="fine-tuning steps",
                               y_label="meta-test query MSE", flex="1 1 300px")
        self.test.frame_colors, self.test.frame_width = ["#08306b"], 3.0
        link_index((self.snapshot_slider, "index"), self.fit, self.test)
        self.readout = widgets.HTML().add_class("minimaml-readout")
        legend = " &nbsp; ".join(f"<span style='color:{c}'>━ after {n} step{'s' * (n != 1)}"
                                 f"</span>" for n, c in zip(FIT_STEPS, FIT_COLORS))
        figure = panel_row(self.fit, self.test)
        figure.add_class("minimaml-figure")
        super().__init__([
            widgets.HTML(caption),
            control_row(self.snapshot_slider, self.new_task_button),
            widgets.HTML(f"━ true function &nbsp; ▲ K = {SHOTS} points &nbsp; {legend} "
                         f"&nbsp; <span style='color:#aaa'>━ other snapshots</span>"),
            figure, self.readout], name="scrubber")
        self.start(self._first_draw, "the meta-test and the fits of all 7 snapshots")

    def _first_draw(self) -> None:
        key = jax.random.fold_in(jax.random.key(self.seed), 10_000)
        tasks = sample_tasks(key, TEST_TASKS, SHOTS, 100)
        self.test_curves = np.stack([
            finetune_curves(jax.tree.map(lambda a: a[i], self.stacked), sine_loss,
                            tasks.support, tasks.query, INNER_LR, TEST_STEPS).mean(axis=0)
            for i in range(len(self.steps))])
        shown = np.clip(self.test_curves, *TEST_RANGE)
        with self.test.hold_sync():
            self.test.set_static(shown, ["#cccccc"] * len(shown), [1.0] * len(shown))
            self.test.set_frames(shown[:, None, :])
        self._new_task()
        self.snapshot_slider.observe(lambda _: self._update(), names="value")
        self.new_task_button.on_click(self._on_new_task)

    def _new_task(self) -> None:
        self.task = sample_task(self.seed, self.task_index)
        t = self.task
        predictions, mse = jax.device_get(_fits(
            self.stacked, t.support_x[:SHOTS], t.support_y[:SHOTS], t.query_x, t.query_y))
        self.predictions = np.clip(np.nan_to_num(predictions, nan=Y_LIMIT), -Y_LIMIT, Y_LIMIT)
        self.fit_mse = mse
        truth = t.amplitude * np.sin(GRID[:, 0] - t.phase)
        with self.fit.hold_sync():
            self.fit.set_static([truth], ["black"])
            self.fit.set_points(t.support_x[:SHOTS, 0], t.support_y[:SHOTS, 0])
            self.fit.set_frames(self.predictions)
        self._update()

    def _on_new_task(self, _: Any = None) -> None:
        self.task_index += 1
        self._new_task()

    def _update(self) -> None:
        i = self.snapshot_slider.value        # the panels follow the slider in the browser
        fits = ", ".join(f"{n} step{'s' * (n != 1)}: {m:.3g}"
                         for n, m in zip(FIT_STEPS, self.fit_mse[i]))
        test = ", ".join(f"{n}: {self.test_curves[i, n]:.3g}" for n in (0, 1, 5, 10))
        self.readout.value = (f"{self._title()}. This task's query MSE "
                              f"after {fits}. Meta-test ({TEST_TASKS} fresh tasks, K = "
                              f"{SHOTS}, α = {INNER_LR}) mean query MSE after n steps — "
                              f"{test}.")

    def _title(self) -> str:
        i = self.snapshot_slider.value
        return (f"θ after {self.steps[i]:,} of {self.steps[-1]:,} meta-steps · task "
                f"A = {self.task.amplitude:.2f}, φ = {self.task.phase:.2f}, K = {SHOTS}")

    def still_figure(self) -> Any:
        from matplotlib.figure import Figure
        figure = Figure(figsize=(9.0, 3.4))
        ax, ax_test = figure.subplots(1, 2, width_ratios=(1.4, 1))
        i, x = self.snapshot_slider.value, GRID[:, 0]
        ax.plot(x, self.task.amplitude * np.sin(x - self.task.phase), "k-", lw=2,
                label="true function")
        ax.plot(self.task.support_x[:SHOTS, 0], self.task.support_y[:SHOTS, 0], "k^",
                label=f"K = {SHOTS} points")
        for n, color, line in zip(FIT_STEPS, FIT_COLORS, self.predictions[i]):
            ax.plot(x, line, color=color, lw=1.8, label=f"after {n} step{'s' * (n != 1)}")
        ax.set(xlim=INPUT_RANGE, ylim=(-Y_LIMIT, Y_LIMIT), xlabel="x", ylabel="y")
        ax.legend(fontsize=8, loc="lower left")
        for j, curve in enumerate(self.test_curves):
            ax_test.plot(curve, color="#08306b" if j == i else "#cccccc",
                         lw=3 if j == i else 1, marker="o" if j == i else None)
        ax_test.set(yscale="log", xlabel="fine-tuning steps", ylabel="meta-test query MSE",
                    ylim=TEST_RANGE)
        for a in (ax, ax_test):
            a.grid(alpha=0.3)
        figure.suptitle(self._title(), fontsize=11)
        figure.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.88, wspace=0.22)
        return figure


def meta_training_scrubber(*, seed: int = 0, snapshot: int = -1) -> MetaTrainingScrubber:
    """The scrubber over the shipped snapshots; ``snapshot`` indexes SNAPSHOT_STEPS (−1:
    the last), ``seed`` picks the tasks."""
    check_int(seed, "seed", 0, 2**31 - 1)
    steps, stacked = load_snapshots()
    check_int(snapshot, "snapshot", -len(steps), len(steps) - 1)
    caption = ("<i>θ: the shipped snapshots of the paper-config MAML run "
               f"(minimaml/data/sinusoid_maml_snapshots.npz, meta-steps "
               f"{', '.join(step_label(s) for s in steps)}).</i>")
    scrubber = MetaTrainingScrubber(steps, stacked, seed=seed, caption=caption)
    scrubber.snapshot_slider.value = snapshot % len(steps)
    return scrubber
