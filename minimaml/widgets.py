"""The live adaptation playground: move K, α and the step count, watch networks fine-tune.

On one sinusoid task, three starting points adapt side by side with plain SGD on the
same K support points: MAML's meta-learned initialisation, the pretrained baseline
and a random initialisation. The figure shows the true function, the support points,
each network's prediction after n steps, and each one's query MSE at every step.

    from minimaml.widgets import playground
    playground()                                  # the shipped paper-config parameters
    playground(maml_params=my_params, seed=3)     # parameters you meta-trained yourself

No JAX recompilation when a slider moves: the support set is always ``MAX_SHOTS``
points with a 0/1 mask selecting the first K, the inner loop always runs
``MAX_STEPS`` steps and keeps its trajectory (the steps slider just picks one), and
α is a traced argument. Only the lines are redrawn (matplotlib blitting on an ipympl
canvas); BENCHMARKS.md has the measured slider-to-figure latency.

:func:`adapt` and :func:`plot_data` are the pure computations behind the figure.
"""
import importlib.resources
import io
import math
from typing import NamedTuple

import ipywidgets as widgets
import jax
import jax.numpy as jnp
import numpy as np

from .maml import check_inner_lr, inner_loop
from .nets import mlp_apply
from .sinusoid import INPUT_RANGE, init_params, load_params, sample_tasks, sine_loss

MAX_SHOTS = 50              # K slider: 1..MAX_SHOTS
MAX_STEPS = 50              # steps slider: 0..MAX_STEPS
INNER_LR_RANGE = (1e-3, 1.0)  # α slider (log scale)
QUERY_POINTS = 100          # held-out points of the task that the MSE readout uses
GRID = np.linspace(*INPUT_RANGE, 200, dtype=np.float32)[:, None]  # (200, 1) plot inputs
Y_LIMIT = 6.0               # the plot's y-range; amplitudes are at most 5
Y_CLIP = 1.5 * Y_LIMIT      # predictions are clipped here: a diverged line leaves the plot
DIVERGED_MSE = 1e3          # a query MSE above this (or not finite) counts as diverged
MSE_CLIP = (1e-4, 1e4)      # range of the plotted MSE curves (log axis)
INITS = ("MAML", "pretrained", "random")
COLORS = {"MAML": "tab:blue", "pretrained": "tab:orange", "random": "tab:green"}


# --- the computation --------------------------------------------------------------------

def load_shipped_params():
    """The sinusoid MAML and pretrained parameters shipped with the package (paper config).

    Returns ``(maml_params, pretrained_params)``; see ``minimaml/data/README.md``.
    """
    data = importlib.resources.files("minimaml") / "data"
    with importlib.resources.as_file(data / "sinusoid_maml.npz") as path:
        maml_params = load_params(path)
    with importlib.resources.as_file(data / "sinusoid_pretrained.npz") as path:
        pretrained_params = load_params(path)
    return maml_params, pretrained_params


@jax.jit
def _sample_task(seed, index):
    key = jax.random.fold_in(jax.random.key(seed), index)
    return jax.tree.map(lambda a: a[0], sample_tasks(key, 1, MAX_SHOTS, QUERY_POINTS))


def sample_task(seed, index=0):
    """Task number ``index`` of the playground's sequence for ``seed`` (numpy arrays).

    A :class:`minimaml.sinusoid.SineTasks` of ONE task (no task axis): amplitude and
    phase are scalars, support_x/support_y: (MAX_SHOTS, 1), query_x/query_y:
    (QUERY_POINTS, 1). A K-shot support set is the first K support points.
    """
    return jax.tree.map(np.asarray, _sample_task(int(seed), int(index)))


def _check_int(value, name, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high}; got {value!r}")


def check_params(params, name="params"):
    """Raise ValueError unless ``params`` is a finite 1-in, 1-out MLP (``nets.mlp_init``)."""
    ok = (isinstance(params, (list, tuple)) and len(params) >= 1
          and all(isinstance(layer, dict) and set(layer) == {"w", "b"} for layer in params))
    if ok:
        shapes = [np.shape(layer["w"]) for layer in params]
        ok = (all(len(s) == 2 for s in shapes) and shapes[0][0] == 1 and shapes[-1][1] == 1
              and all(a[1] == b[0] for a, b in zip(shapes, shapes[1:])))
    if not ok:
        raise ValueError(f"{name} must be sinusoid MLP parameters: a list of "
                         f"{{'w', 'b'}} dicts from 1 input to 1 output (as made by "
                         f"minimaml.sinusoid.init_params)")
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(params)):
        raise ValueError(f"{name} holds NaN or infinite values")


class Adaptation(NamedTuple):
    """One initialisation fine-tuned on one task, after every step 0..MAX_STEPS (numpy).

    predictions: (MAX_STEPS + 1, len(GRID)) the network's output on ``GRID`` after n steps.
    query_mse: (MAX_STEPS + 1,) its MSE on the task's QUERY_POINTS query points.
    support_loss: (MAX_STEPS + 1,) its MSE on the K support points.
    Values may be NaN or infinite when α is too large; :func:`plot_data` makes them safe.
    """
    predictions: np.ndarray
    query_mse: np.ndarray
    support_loss: np.ndarray


@jax.jit
def _adapt(params, support_x, support_y, support_mask, query_x, query_y, inner_lr):
    # Shapes never change (MAX_SHOTS points, MAX_STEPS steps), so this compiles once
    # per parameter shape; α is traced, and the mask picks the first K points.
    _, trajectory = inner_loop(sine_loss, params, (support_x, support_y, support_mask),
                               inner_lr, MAX_STEPS, trajectory=True)
    predictions = jax.vmap(mlp_apply, in_axes=(0, None))(trajectory.params, GRID)[..., 0]
    query_mse = jax.vmap(sine_loss, in_axes=(0, None))(trajectory.params, (query_x, query_y))
    return predictions, query_mse, trajectory.losses


def _dispatch(params, task, shots, inner_lr):
    _check_int(shots, "shots (K)", 1, MAX_SHOTS)
    check_inner_lr(inner_lr)
    mask = (np.arange(MAX_SHOTS) < shots).astype(np.float32)
    return _adapt(params, task.support_x, task.support_y, mask, task.query_x, task.query_y,
                  np.float32(inner_lr))


def adapt(params, task, shots, inner_lr):
    """Fine-tune ``params`` on the first ``shots`` support points of ``task`` for
    MAX_STEPS SGD steps of size ``inner_lr``; return every step as an :class:`Adaptation`.

    The same numbers as ``sinusoid.adaptation_predictions(params, support_x[:shots],
    support_y[:shots], GRID, inner_lr, MAX_STEPS)`` (up to float rounding), computed
    with a padded, masked support set so that no argument value recompiles it.
    """
    return Adaptation(*jax.device_get(_dispatch(params, task, shots, inner_lr)))


class PlotData(NamedTuple):
    """What the playground draws for one initialisation at one step (all finite).

    predictions: (len(GRID),) clipped to ±Y_CLIP; mse_curve: (MAX_STEPS + 1,) query MSE
    per step clipped to MSE_CLIP; query_mse: the raw query MSE at ``steps`` (may be
    inf/NaN); diverged_at: the first step whose query MSE is not finite or above
    DIVERGED_MSE, or None.
    """
    predictions: np.ndarray
    mse_curve: np.ndarray
    query_mse: float
    diverged_at: object


def diverged_at(adaptation):
    """First step whose query MSE is not finite or above DIVERGED_MSE, else None."""
    bad = ~np.isfinite(adaptation.query_mse) | (adaptation.query_mse > DIVERGED_MSE)
    bad |= ~np.all(np.isfinite(adaptation.predictions), axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def view(adaptation, steps):
    """The :class:`PlotData` of ``adaptation`` after ``steps`` steps (no JAX involved)."""
    _check_int(steps, "steps", 0, MAX_STEPS)
    predictions = np.nan_to_num(adaptation.predictions[steps], nan=Y_CLIP,
                                posinf=Y_CLIP, neginf=-Y_CLIP)
    curve = np.nan_to_num(adaptation.query_mse, nan=MSE_CLIP[1], posinf=MSE_CLIP[1])
    return PlotData(np.clip(predictions, -Y_CLIP, Y_CLIP), np.clip(curve, *MSE_CLIP),
                    float(adaptation.query_mse[steps]), diverged_at(adaptation))


def plot_data(params, task, shots, inner_lr, steps):
    """What the playground plots for ``params`` at these slider settings: a :class:`PlotData`."""
    return view(adapt(params, task, shots, inner_lr), steps)


# --- the widget -------------------------------------------------------------------------

def _new_canvas(figsize, dpi):
    # An ipympl canvas whatever pyplot's backend is (inline in the chapters, Agg in
    # tests), and not registered with pyplot, so a reader's plt.plot() never lands on it.
    import matplotlib.pyplot as plt
    from ipympl.backend_nbagg import new_figure_manager

    with plt.ioff():
        manager = new_figure_manager(0, figsize=figsize, dpi=dpi)
    canvas = manager.canvas
    canvas.header_visible = False
    canvas.toolbar_visible = False
    canvas.resizable = False
    return canvas


class Playground(widgets.VBox):
    """The playground widget; build it with :func:`playground`.

    Controls (ipywidgets, all public attributes): ``shots_slider`` (K),
    ``inner_lr_slider`` (α, log scale), ``steps_slider``, ``play`` (animates the
    steps slider 0 → MAX_STEPS), ``new_task_button``. Readouts: ``readout`` (each
    network's query MSE at the current step), ``note`` (a warning when fine-tuning
    diverged), ``figure`` (the matplotlib figure on an ipympl canvas).
    ``current[name]`` holds the :class:`PlotData` drawn for each of ``INITS``.
    """

    def __init__(self, inits, *, seed=0, shots=10, inner_lr=0.01, steps=10):
        self.inits = dict(inits)
        self.seed = int(seed)
        self.task_index = 0
        self.task = sample_task(self.seed, 0)
        self.adaptations = {}
        self.current = {}
        self._background = None

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

        self._build_figure()
        self._adapt_all()
        self._update()
        self._show_canvas()

        self.shots_slider.observe(self._on_settings, names="value")
        self.inner_lr_slider.observe(self._on_settings, names="value")
        self.steps_slider.observe(self._on_steps, names="value")
        self.new_task_button.on_click(self._on_new_task)
        super().__init__([
            widgets.HBox([self.shots_slider, self.inner_lr_slider]),
            widgets.HBox([self.steps_slider, self.play, self.new_task_button]),
            self.figure.canvas, self.readout, self.note])

    # -- figure --
    def _build_figure(self):
        canvas = _new_canvas(figsize=(9.0, 3.4), dpi=80)
        fig = self.figure = canvas.figure
        ax, ax_mse = fig.subplots(1, 2, width_ratios=(1.7, 1))
        fig.subplots_adjust(left=0.05, right=0.985, bottom=0.14, top=0.88, wspace=0.2)
        x = GRID[:, 0]
        # Everything that moves is "animated": drawn by us on top of a saved background.
        self.truth_line, = ax.plot(x, x, "k-", lw=2, label="true function", animated=True)
        self.support_dots, = ax.plot([], [], "k^", ms=7, label="K support points",
                                     animated=True)
        self.pred_lines = {name: ax.plot(x, x, color=COLORS[name], lw=1.8,
                                         ls="--" if name == "random" else "-",
                                         label=name, animated=True)[0] for name in INITS}
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
        self._animated = [self.truth_line, self.support_dots, *self.pred_lines.values(),
                          *self.mse_lines.values(), *self.mse_dots.values(), self.step_marker,
                          self.task_text, self.diverged_text]
        canvas.mpl_connect("draw_event", self._on_draw)

    def _show_canvas(self):
        # ipympl sets up the canvas's first picture and size when the canvas itself is
        # displayed; inside our VBox it never is, so ask it here. Without a frontend
        # ipympl would also re-encode every frame into that picture, and it stores it
        # without its "data:" prefix (a broken image in the browser): switch that off.
        canvas = self.figure.canvas
        canvas.syncing_data_url = False
        canvas._repr_mimebundle_()
        canvas.draw()  # full draw once (background + lines); later updates only blit

    def _on_draw(self, event):
        # After any full draw (first display, resize, HiDPI), keep the static parts
        # as the background and draw the moving ones on top. savefig draws the moving
        # ones itself: a background taken then would hold them (ghost lines later).
        if self.figure.canvas.is_saving():
            return
        self._background = self.figure.canvas.copy_from_bbox(self.figure.bbox)
        self._draw_animated()

    def _draw_animated(self):
        for artist in self._animated:
            artist.axes.draw_artist(artist)

    def _blit(self):
        canvas = self.figure.canvas
        if self._background is None:
            canvas.draw()
            return
        canvas.restore_region(self._background)
        self._draw_animated()
        # Send a whole frame, not a diff against the last one: frames we push faster
        # than the browser loads them get dropped there, and a later diff applied to a
        # stale picture leaves ghost lines. (A full frame costs ~1-2 ms more to encode.)
        canvas._force_full = True
        canvas.blit(self.figure.bbox)

    # -- state --
    def _adapt_all(self):
        shots, inner_lr = self.shots_slider.value, self.inner_lr_slider.value
        # Start all three before waiting for any (JAX dispatches asynchronously, so
        # they can share the cores); stacking them into one vmapped call was no faster.
        pending = {name: _dispatch(params, self.task, shots, inner_lr)
                   for name, params in self.inits.items()}
        self.adaptations = {name: Adaptation(*out)
                            for name, out in jax.device_get(pending).items()}

    def _update(self):
        steps, shots = self.steps_slider.value, self.shots_slider.value
        task = self.task
        self.truth_line.set_ydata(task.amplitude * np.sin(GRID[:, 0] - task.phase))
        self.support_dots.set_data(task.support_x[:shots, 0], task.support_y[:shots, 0])
        self.task_text.set_text(f"A = {task.amplitude:.2f}, φ = {task.phase:.2f}")
        self.step_marker.set_xdata([steps, steps])
        self.current = {name: view(a, steps) for name, a in self.adaptations.items()}
        diverged = []
        for name, data in self.current.items():
            self.pred_lines[name].set_ydata(data.predictions)
            self.mse_lines[name].set_ydata(data.mse_curve)
            self.mse_dots[name].set_data([steps], [data.mse_curve[steps]])
            if data.diverged_at is not None and data.diverged_at <= steps:
                diverged.append((name, data.diverged_at))
        self.diverged_text.set_text("diverged: α too large" if diverged else "")
        self.readout.value = self._readout_html(steps, shots)
        self.note.value = self._note_html(diverged)

    def _readout_html(self, steps, shots):
        cells = []
        for name, data in self.current.items():
            diverged = data.diverged_at is not None and data.diverged_at <= steps
            value = "diverged" if diverged else f"{data.query_mse:.3g}"
            cells.append(f"<span style='color:{COLORS[name]}'><b>{name}</b></span> "
                         f"<span class='minimaml-mse'>{value}</span>")
        return (f"Query MSE on {QUERY_POINTS} fresh points of this task after {steps} "
                f"step{'s' * (steps != 1)} on K = {shots}, α = "
                f"{self.inner_lr_slider.value:.3g}: " + " &nbsp;·&nbsp; ".join(cells))

    def _note_html(self, diverged):
        if not diverged:
            return ""
        which = ", ".join(f"{name} (from step {step})" for name, step in diverged)
        return (f"<div style='color:#b00000'><b>⚠ diverged:</b> fine-tuning blew up for "
                f"{which}: the query MSE passed {DIVERGED_MSE:g} or stopped being a number. "
                f"α = {self.inner_lr_slider.value:.3g} is too large a step for these "
                f"networks; try a smaller α. Lines are clipped to stay on the plot.</div>")

    # -- events --
    def _on_settings(self, change):
        self._adapt_all()
        self._update()
        self._blit()

    def _on_steps(self, change):
        self._update()
        self._blit()

    def _on_new_task(self, button=None):
        self.task_index += 1
        self.task = sample_task(self.seed, self.task_index)
        self._on_settings(None)

    def snapshot_png(self):
        """The figure as it is drawn now, as PNG bytes."""
        from PIL import Image

        pixels = np.asarray(self.figure.canvas.get_renderer().buffer_rgba())
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="png")
        return buffer.getvalue()

    def _repr_mimebundle_(self, **kwargs):
        # A static picture beside the live widget, for viewers without a kernel.
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        import base64
        return {**bundle, "image/png": base64.b64encode(self.snapshot_png()).decode(),
                "text/plain": "minimaml playground (live in JupyterLab with a running kernel)"}


def playground(maml_params=None, pretrained_params=None, random_params=None, *, seed=0,
               shots=10, inner_lr=0.01, steps=10):
    """The live adaptation playground on a sinusoid task, as an ipywidgets widget.

    Args:
      maml_params, pretrained_params: MLP parameters (``sinusoid.init_params`` shape,
        any hidden sizes); ``None`` uses the shipped paper-config ones
        (:func:`load_shipped_params`).
      random_params: the "random" initialisation; ``None`` draws a fresh one shaped
        like ``maml_params`` from ``seed``.
      seed: picks the task sequence (and the random initialisation).
      shots, inner_lr, steps: the sliders' starting values, K in 1..MAX_SHOTS,
        α in INNER_LR_RANGE, steps in 0..MAX_STEPS.

    Returns:
      a :class:`Playground` (an ``ipywidgets.VBox``); display it in JupyterLab.
    """
    _check_int(seed, "seed", 0, 2**31 - 1)
    _check_int(shots, "shots (K)", 1, MAX_SHOTS)
    _check_int(steps, "steps", 0, MAX_STEPS)
    if not (isinstance(inner_lr, (int, float)) and
            INNER_LR_RANGE[0] <= inner_lr <= INNER_LR_RANGE[1]):
        raise ValueError(f"inner_lr (α) must be a number in {INNER_LR_RANGE[0]:g}.."
                         f"{INNER_LR_RANGE[1]:g}; got {inner_lr!r}")
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
    return Playground(inits, seed=seed, shots=shots, inner_lr=float(inner_lr), steps=steps)
