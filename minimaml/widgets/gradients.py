"""Chapter 2's widget: MAML's second-order meta-gradient next to the first-order one, per layer.

    from minimaml.widgets import second_order_explorer
    second_order_explorer()

For one inner SGD step θ' = θ − α∇L_S(θ), the meta-gradient is
(I − α∇²L_S(θ)) ∇L_Q(θ'); first-order MAML keeps only ∇L_Q(θ'). The widget computes
both with ``jax.grad`` of :func:`minimaml.maml.maml_objective` (second order, and with
``first_order=True``) on a batch of sinusoid tasks, for every α the slider can take at
once (one compiled call per θ or task batch), and shows for each layer of the network
the size of the dropped term −α∇²L_S ∇L_Q relative to the full meta-gradient, and the
angle between the two. Moving α only picks a column: no computation, no compilation.
"""
import math
from typing import Any, NamedTuple

import ipywidgets as widgets
import jax
import numpy as np

from ..checks import check_choice, check_int, check_number
from ..maml import maml_objective
from ..sinusoid import init_params, sample_tasks, sine_loss
from ..types import PyTree
from .frames import FramePanel, link_index
from .live import LiveWidget, button, control_row, panel_row, slider_layout
from .sinusoid_adaptation import check_params, load_shipped_params

LOG_ALPHA = (-3.0, 0.0, 0.05)     # the α slider: 10^-3 … 10^0 in steps of 0.05 decades
ALPHAS = 10.0 ** np.arange(LOG_ALPHA[0], LOG_ALPHA[1] + 1e-9, LOG_ALPHA[2])
TASKS, SHOTS = 25, 10             # the paper's meta-batch and K
LAYER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#444444")
THETAS = ("MAML θ (shipped)", "random init")
RATIO_RANGE = (1e-4, 10.0)


class MetaGradients(NamedTuple):
    """Per α (rows, ``ALPHAS``) and layer (columns; the last is all of θ), numpy:
    second / first: norms of the second- and first-order meta-gradients; dropped: norm
    of their difference (the term first order drops); angle: degrees between them."""
    second: np.ndarray
    first: np.ndarray
    dropped: np.ndarray
    angle: np.ndarray


@jax.jit
def _both_gradients(params, support, query, inner_lrs):
    def at(inner_lr):
        second = jax.grad(maml_objective)(params, sine_loss, support, query, inner_lr, 1)
        first = jax.grad(lambda p: maml_objective(p, sine_loss, support, query, inner_lr, 1,
                                                  first_order=True))(params)
        return second, first
    return jax.lax.map(at, inner_lrs)


def meta_gradients(params: PyTree, support: Any, query: Any,
                   inner_lrs: np.ndarray = ALPHAS) -> MetaGradients:
    """Both meta-gradients of ``params`` on these tasks for each α, compared layer by layer."""
    second, first = jax.device_get(_both_gradients(params, support, query,
                                                   np.asarray(inner_lrs, np.float32)))

    def per_layer(tree):   # (A, parameters of layer l) for each layer, then all of θ
        layers = [np.concatenate([leaf.reshape(len(inner_lrs), -1)
                                  for leaf in jax.tree.leaves(layer)], axis=1)
                  for layer in tree]
        return [*layers, np.concatenate(layers, axis=1)]
    rows = []
    for g2, g1 in zip(per_layer(second), per_layer(first)):
        n2, n1 = np.linalg.norm(g2, axis=1), np.linalg.norm(g1, axis=1)
        cos = np.sum(g2 * g1, axis=1) / np.maximum(n2 * n1, 1e-30)
        rows.append((n2, n1, np.linalg.norm(g2 - g1, axis=1),
                     np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))))
    return MetaGradients(*(np.stack(parts, axis=1) for parts in zip(*rows)))


def alpha_index(inner_lr: float) -> int:
    """The column of ``ALPHAS`` nearest to ``inner_lr`` (the slider's own grid)."""
    position = (math.log10(inner_lr) - LOG_ALPHA[0]) / LOG_ALPHA[2]
    return int(np.clip(round(position), 0, len(ALPHAS) - 1))


class SecondOrderExplorer(LiveWidget):
    """Controls: ``inner_lr_slider`` (α, a selection of ``ALPHAS``: the panels follow its
    ``index`` in the browser), ``theta_buttons`` (which θ), ``new_tasks_button``.
    ``gradients``: the :class:`MetaGradients` of the current θ and tasks."""

    def __init__(self, thetas: dict[str, PyTree], *, seed: int, inner_lr: float):
        self.thetas, self.seed, self.batch_index = thetas, seed, 0
        self._computed: dict = {}
        self.layer_names = [f"layer {i + 1} ({np.shape(layer['w'])[0]}→"
                            f"{np.shape(layer['w'])[1]})"
                            for i, layer in enumerate(next(iter(thetas.values())))] + ["all of θ"]
        self.inner_lr_slider = slider_layout(widgets.SelectionSlider(
            options=[(f"{a:#.3g}", float(a)) for a in ALPHAS], index=alpha_index(inner_lr),
            description="α (inner step size)",
            tooltip="α of the one inner SGD step (log scale)"), "inner-lr")
        self.theta_buttons = widgets.ToggleButtons(options=list(thetas), value=list(thetas)[0],
                                                   tooltips=["θ meta-trained by MAML "
                                                             "(paper config)",
                                                             "a fresh network"][:len(thetas)])
        self.theta_buttons.add_class("minimaml-theta")
        self.theta_buttons.style.button_width = "auto"
        self.new_tasks_button = button("new tasks", f"draw another batch of {TASKS} tasks",
                                       "new-tasks", icon="refresh")
        colors = list(LAYER_COLORS[:len(self.layer_names) - 1]) + [LAYER_COLORS[-1]]
        alpha_range = (ALPHAS[0], ALPHAS[-1])
        self.ratio_panel = FramePanel(ALPHAS, x_range=alpha_range, y_range=RATIO_RANGE,
                                      log_x=True, log_y=True, x_label="α",
                                      y_label="|dropped| / |meta-gradient|",
                                      dots_at_index=True)
        self.angle_panel = FramePanel(ALPHAS, x_range=alpha_range, y_range=(0.0, 180.0),
                                      log_x=True, x_label="α", y_label="angle (degrees)",
                                      dots_at_index=True, legend=self.layer_names)
        self.colors = colors
        link_index((self.inner_lr_slider, "index"), self.ratio_panel, self.angle_panel)
        self.readout = widgets.HTML().add_class("minimaml-readout")
        legend = " &nbsp; ".join(f"<span style='color:{c}'>━ {n}</span>"
                                 for n, c in zip(self.layer_names, colors))
        figure = panel_row(self.ratio_panel, self.angle_panel)
        figure.add_class("minimaml-figure")
        super().__init__([
            widgets.HTML(f"<i>{len(self.thetas)} θ to compare; MAML θ: the shipped "
                         f"paper-config parameters (minimaml/data/, 70,000 meta-steps). "
                         f"{TASKS} sinusoid tasks, K = {SHOTS}, one inner step.</i>"),
            control_row(self.inner_lr_slider, self.theta_buttons, self.new_tasks_button),
            widgets.HTML(legend), figure, self.readout],
            name="second-order")
        self.start(self._first_draw, "both meta-gradients for all 61 values of α")

    def _first_draw(self) -> None:
        self._compute()
        self._update()
        self.inner_lr_slider.observe(lambda _: self._update(), names="value")
        self.theta_buttons.observe(self._on_change, names="value")
        self.new_tasks_button.on_click(self._on_new_tasks)

    def _tasks(self):
        key = jax.random.fold_in(jax.random.key(self.seed), self.batch_index)
        return sample_tasks(key, TASKS, SHOTS, SHOTS)

    def _compute(self) -> None:
        key = (self.theta_buttons.value, self.batch_index)
        if key not in self._computed:   # toggling θ back costs nothing
            tasks = self._tasks()
            self._computed[key] = meta_gradients(self.thetas[key[0]], tasks.support,
                                                 tasks.query)
        self.gradients = self._computed[key]
        g = self.gradients
        ratio = np.clip(g.dropped / np.maximum(g.second, 1e-30), *RATIO_RANGE)
        self.ratio_panel.set_static(ratio.T, self.colors)
        self.angle_panel.set_static(g.angle.T, self.colors)

    def _on_change(self, change: Any = None) -> None:
        self._compute()
        self._update()

    def _on_new_tasks(self, _: Any = None) -> None:
        self.batch_index += 1
        self._on_change()

    def _update(self) -> None:
        i = self.inner_lr_slider.index     # the panels' dots follow it in the browser
        g = self.gradients
        rows = "".join(
            f"<tr><td>{n}</td><td>{g.second[i, l]:.3g}</td><td>{g.first[i, l]:.3g}</td>"
            f"<td>{g.dropped[i, l]:.3g}</td><td>{100 * g.dropped[i, l] / max(g.second[i, l], 1e-30):.1f}%</td>"
            f"<td>{g.angle[i, l]:.1f}°</td></tr>" for l, n in enumerate(self.layer_names))
        self.readout.value = (
            f"<b>{self._title()}</b><table class='minimaml-table'><tr><th>layer</th>"
            "<th>|second order|</th><th>|first order|</th><th>|dropped term|</th>"
            "<th>dropped / second</th><th>angle</th></tr>" + rows + "</table>")

    def _title(self) -> str:
        return (f"α = {self.inner_lr_slider.value:#.3g}, θ = {self.theta_buttons.value}, "
                f"task batch {self.batch_index}")

    def still_figure(self) -> Any:
        from matplotlib.figure import Figure
        figure = Figure(figsize=(9.0, 3.4))
        axes = figure.subplots(1, 2)
        g, i = self.gradients, self.inner_lr_slider.index
        ratio = g.dropped / np.maximum(g.second, 1e-30)
        for l, (name, color) in enumerate(zip(self.layer_names, LAYER_COLORS)):
            axes[0].plot(ALPHAS, ratio[:, l], color=color, label=name)
            axes[1].plot(ALPHAS, g.angle[:, l], color=color)
            axes[0].plot([ALPHAS[i]], [ratio[i, l]], "o", color=color)
            axes[1].plot([ALPHAS[i]], [g.angle[i, l]], "o", color=color)
        axes[0].set(xscale="log", yscale="log", xlabel="α", ylabel="|dropped| / |meta-gradient|")
        axes[1].set(xscale="log", xlabel="α", ylabel="angle (degrees)", ylim=(0, 180))
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        figure.suptitle(self._title(), fontsize=11)
        figure.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
        return figure


def second_order_explorer(maml_params: PyTree | None = None, *, seed: int = 0,
                          inner_lr: float = 0.01, theta: str = THETAS[0]) -> SecondOrderExplorer:
    """The widget; ``maml_params`` None uses the shipped MAML θ, ``theta`` picks the θ
    shown first (one of ``THETAS``), ``seed`` the task batches and the random init."""
    check_int(seed, "seed", 0, 2**31 - 1)
    inner_lr = check_number(inner_lr, "inner_lr (α)", ALPHAS[0], ALPHAS[-1])
    check_choice(theta, "theta", THETAS)
    if maml_params is None:
        maml_params = load_shipped_params()[0]
    check_params(maml_params, "maml_params")
    hidden = tuple(int(np.shape(layer["w"])[1]) for layer in maml_params[:-1])
    thetas = {THETAS[0]: maml_params,
              THETAS[1]: init_params(jax.random.fold_in(jax.random.key(seed), 1), hidden)}
    thetas = {n: jax.tree.map(jax.numpy.asarray, p) for n, p in thetas.items()}
    explorer = SecondOrderExplorer(thetas, seed=seed, inner_lr=inner_lr)
    if theta != THETAS[0]:
        explorer.theta_buttons.value = theta
    return explorer
