"""Chapter 6's widget: a meta-trained conv net adapting to a 5-way 1-shot Omniglot task.

    from minimaml.widgets import omniglot_adaptation
    omniglot_adaptation()

One support drawing per class (characters the network never saw in meta-training),
query drawings of the same characters, and for each query the predicted class
probabilities after each inner SGD step on the support set. θ is the shipped one
(``minimaml/data/omniglot_5way1shot.npz``, paper config) unless you pass your own; the
images come from :func:`minimaml.omniglot.load` (``$MINIMAML_OMNIGLOT_DIR`` or the
download cache). All ``MAX_STEPS`` steps are computed at once when α or the task
changes (one compiled call); the steps slider only picks one.
"""
import base64
import importlib.resources
import io
import math
from typing import Any

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np

from .. import npz
from ..checks import check_int, check_number
from ..maml import inner_loop
from ..nets import conv_init
from ..types import PyTree
from .frames import FramePanel, link_index
from .live import LiveWidget, button, control_row, slider_layout

WAYS, SHOTS, QUERIES = 5, 1, 2        # QUERIES per class, each group of WAYS one batch
MAX_STEPS = 10
# α slider: log scale in steps of 0.05 decades, placed so that the meta-trained α = 0.4
# is one of its positions (≈ 0.01 … 2.0)
LOG_INNER_LR = (math.log10(0.4) - 32 * 0.05, math.log10(0.4) + 14 * 0.05, 0.05)
INNER_LR_RANGE = (10 ** LOG_INNER_LR[0], 10 ** LOG_INNER_LR[1])
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")
CURVE_COLORS = ("#08306b", "#e6550d")


def load_shipped_omniglot() -> PyTree:
    """The shipped 5-way 1-shot θ (conv net of :func:`minimaml.nets.conv_init`)."""
    data = importlib.resources.files("minimaml") / "data"
    like = conv_init(jax.random.key(0), WAYS)
    with importlib.resources.as_file(data / "omniglot_5way1shot.npz") as path:
        params, _ = npz.load(path, like=like)
    return params


def _test_images(data: Any) -> jax.Array:
    from ..omniglot import Config, split_images
    return split_images(data, Config())[1]


@jax.jit
def _adapt(params, support_x, support_y, query_x, query_y, inner_lr):
    """Class probabilities of the queries after 0..MAX_STEPS steps, (MAX_STEPS+1, N*Q, N),
    and the support loss at each step. Queries go through the net in groups of one per
    class (as in training: BatchNorm over each group)."""
    from ..omniglot import classifier, query_groups
    apply_fn, loss_fn = classifier()
    _, trajectory = inner_loop(params, loss_fn, (support_x, support_y), inner_lr, MAX_STEPS,
                               trajectory=True)
    groups_x, _ = query_groups(query_x, query_y, WAYS, 1)          # (Q, N, 28, 28, 1)

    def probabilities(p):
        logits = jax.vmap(apply_fn, in_axes=(None, 0))(p, groups_x)  # (Q, N, N)
        per_query = jnp.swapaxes(jax.nn.softmax(logits), 0, 1)       # (N, Q, N): class-major
        return per_query.reshape(-1, WAYS)
    return jax.vmap(probabilities)(trajectory.params), trajectory.losses


def image_png(image: np.ndarray, scale: int = 2) -> str:
    """A 28x28 drawing (ink = 1) as a base64 PNG, ``scale`` times larger, ink dark."""
    from PIL import Image
    pixels = (255 * (1.0 - np.clip(image, 0.0, 1.0))).astype(np.uint8)
    picture = Image.fromarray(pixels, mode="L").resize(
        (pixels.shape[1] * scale, pixels.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


class OmniglotAdaptation(LiveWidget):
    """Controls: ``inner_lr_slider`` (α), ``steps_slider``, ``new_task_button``.
    ``probabilities``: (MAX_STEPS+1, N*Q, N) for the current task and α; ``task``."""

    def __init__(self, params: PyTree, *, seed: int, inner_lr: float, steps: int,
                 caption: str, data: Any = None):
        self.params, self.seed, self.task_index, self._data = params, seed, 0, data
        self.inner_lr_slider = slider_layout(widgets.FloatLogSlider(
            value=inner_lr, base=10, min=LOG_INNER_LR[0], max=LOG_INNER_LR[1],
            step=LOG_INNER_LR[2], description="α (step size)",
            readout_format=".3g", tooltip="α of the inner SGD steps (meta-trained: 0.4)"),
            "inner-lr")
        self.steps_slider = slider_layout(widgets.IntSlider(
            value=steps, min=0, max=MAX_STEPS, description="steps",
            tooltip="inner SGD steps taken on the 5 support drawings"), "steps")
        self.new_task_button = button("new task", "five other characters from the meta-test "
                                      "split", "new-task", icon="refresh")
        self.support_view = widgets.HTML().add_class("minimaml-support")
        self.query_view = widgets.HTML().add_class("minimaml-queries")
        self.curve_panel = FramePanel(np.arange(MAX_STEPS + 1), x_range=(0, MAX_STEPS),
                                      y_range=(0.0, 1.0), x_label="inner steps",
                                      y_label="accuracy / probability", min_width="260px",
                                      flex="1 1 300px", height=220, dots_at_index=True,
                                      legend=["accuracy", "p(right class)"])
        link_index((self.steps_slider, "value"), self.curve_panel)
        self.readout = widgets.HTML().add_class("minimaml-readout")
        views = widgets.Box([widgets.VBox([self.support_view, self.query_view],
                                          layout=widgets.Layout(flex="2 1 380px")),
                             self.curve_panel],
                            layout=widgets.Layout(display="flex", flex_flow="row wrap",
                                                  width="100%"))
        views.add_class("minimaml-figure")
        super().__init__([
            widgets.HTML(caption),
            control_row(self.inner_lr_slider, self.steps_slider, self.new_task_button),
            views, widgets.HTML("<span style='color:#08306b'>━ query accuracy</span> &nbsp; "
                                "<span style='color:#e6550d'>━ mean probability of the "
                                "right class</span>"), self.readout], name="omniglot")
        self.start(self._first_draw, "loading Omniglot's meta-test characters and the "
                                     f"{MAX_STEPS}-step adaptation of the conv net")

    def _first_draw(self) -> None:
        if self._data is None:
            from ..omniglot import load
            self._data = load(progress=False)
        self.test_images = _test_images(self._data)
        self._new_task()
        self.inner_lr_slider.observe(lambda _: self._adapt(), names="value")
        self.steps_slider.observe(lambda _: self._update(), names="value")
        self.new_task_button.on_click(self._on_new_task)

    def _new_task(self) -> None:
        from ..omniglot import sample_tasks
        key = jax.random.fold_in(jax.random.key(self.seed), self.task_index)
        self.task = jax.tree.map(lambda a: np.asarray(a)[0], sample_tasks(
            key, self.test_images, 1, WAYS, SHOTS, QUERIES))
        self.support_pngs = [image_png(x[..., 0]) for x in self.task.support_x]
        self.query_pngs = [image_png(x[..., 0]) for x in self.task.query_x]
        self.support_view.value = "<div style='display:flex;flex-wrap:wrap;gap:6px'>" + "".join(
            f"<div style='text-align:center;border:3px solid {CLASS_COLORS[y]};padding:2px'>"
            f"<img src='data:image/png;base64,{png}' width=56 height=56><br>"
            f"<small>class {y + 1}</small></div>"
            for png, y in zip(self.support_pngs, self.task.support_y)) + \
            "<div style='align-self:center'><small>support: one drawing per class</small></div></div>"
        self._adapt()

    def _on_new_task(self, _: Any = None) -> None:
        self.task_index += 1
        self._new_task()

    def _adapt(self) -> None:
        t = self.task
        probabilities, losses = jax.device_get(_adapt(
            self.params, t.support_x, t.support_y, t.query_x, t.query_y,
            np.float32(self.inner_lr_slider.value)))
        self.probabilities = np.nan_to_num(probabilities, nan=1.0 / WAYS)
        self.support_losses = losses
        right = self.probabilities[:, np.arange(len(t.query_y)), t.query_y]   # (S+1, N*Q)
        accuracy = (self.probabilities.argmax(-1) == t.query_y).mean(axis=1)
        self.accuracy = accuracy
        self.curve_panel.set_static([accuracy, right.mean(axis=1)], list(CURVE_COLORS))
        self._update()

    def _update(self) -> None:
        n, t = self.steps_slider.value, self.task
        probs = self.probabilities[n]
        cells = []
        for png, p, y in zip(self.query_pngs, probs, t.query_y):
            guess = int(p.argmax())
            bars = "".join(
                f"<div style='display:flex;align-items:center;height:9px'>"
                f"<div style='width:{max(1, round(50 * v))}px;height:7px;background:"
                f"{CLASS_COLORS[c]}'></div><small style='font-size:8px;margin-left:2px'>"
                f"{100 * v:.0f}</small></div>" for c, v in enumerate(p))
            mark = "✓" if guess == y else "✗"
            cells.append(f"<div style='display:flex;gap:3px;border:1px solid #ddd;padding:2px'>"
                         f"<div style='text-align:center'><img src='data:image/png;base64,"
                         f"{png}' width=42 height=42><br><small style='color:"
                         f"{CLASS_COLORS[y]}'>class {y + 1} {mark}</small></div>"
                         f"<div style='width:72px'>{bars}</div></div>")
        self.query_view.value = ("<div style='display:flex;flex-wrap:wrap;gap:4px'>"
                                 + "".join(cells) + "</div>")
        self.readout.value = (f"{self._title()}: {int(round(self.accuracy[n] * len(t.query_y)))}"
                              f" of {len(t.query_y)} queries right; support loss "
                              f"{self.support_losses[n]:.3g}.")

    def _title(self) -> str:
        n = self.steps_slider.value
        return (f"task {self.task_index} · α = {self.inner_lr_slider.value:#.3g} · "
                f"{n} step{'s' * (n != 1)}")

    def still_figure(self) -> Any:
        from matplotlib.figure import Figure
        t, n = self.task, self.steps_slider.value
        figure = Figure(figsize=(9.0, 3.6))
        grid = figure.add_gridspec(3, 10, height_ratios=(1, 1, 0.8))
        for i, (x, y) in enumerate(zip(t.support_x, t.support_y)):
            ax = figure.add_subplot(grid[0, 2 * i])
            ax.imshow(1 - x[..., 0], cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"class {y + 1}", fontsize=8, color=CLASS_COLORS[y])
            ax.axis("off")
        for i, (x, y, p) in enumerate(zip(t.query_x, t.query_y, self.probabilities[n])):
            ax = figure.add_subplot(grid[1, i])
            ax.imshow(1 - x[..., 0], cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
            bar = figure.add_subplot(grid[2, i])
            bar.bar(range(WAYS), p, color=CLASS_COLORS)
            bar.set(ylim=(0, 1), xticks=[], yticks=[])
            bar.set_title(f"{y + 1}{'✓' if p.argmax() == y else '✗'}", fontsize=8)
        figure.suptitle(f"{self._title()}: {self.accuracy[n]:.0%} of the queries right "
                        f"(top: support; below: queries and their class probabilities)",
                        fontsize=10)
        return figure


def omniglot_adaptation(params: PyTree | None = None, *, seed: int = 0, inner_lr: float = 0.4,
                        steps: int = 1, data: Any = None) -> OmniglotAdaptation:
    """The widget. ``params``: a 5-way conv net θ (None: the shipped one); ``data``: an
    :class:`minimaml.omniglot.Omniglot` (None: :func:`minimaml.omniglot.load`)."""
    check_int(seed, "seed", 0, 2**31 - 1)
    check_int(steps, "steps", 0, MAX_STEPS)
    inner_lr = check_number(inner_lr, "inner_lr (α)", *INNER_LR_RANGE)
    if params is None:
        params = load_shipped_omniglot()
        caption = ("<i>θ: the shipped 5-way 1-shot parameters (minimaml/data/"
                   "omniglot_5way1shot.npz, paper config: one inner step at α = 0.4 in "
                   "meta-training). Characters from the 423 meta-test ones.</i>")
    else:
        like = conv_init(jax.random.key(0), WAYS)
        if jax.tree.structure(params) != jax.tree.structure(like) or any(
                np.shape(a) != np.shape(b) for a, b in zip(jax.tree.leaves(params),
                                                            jax.tree.leaves(like))):
            raise ValueError("params must be a 5-way conv net θ shaped like "
                             "minimaml.nets.conv_init(key, 5)")
        caption = "<i>θ: your parameters. Characters from the 423 meta-test ones.</i>"
    params = jax.tree.map(jnp.asarray, params)
    return OmniglotAdaptation(params, seed=seed, inner_lr=inner_lr, steps=steps,
                              caption=caption, data=data)
