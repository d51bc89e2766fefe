"""The computation behind the sinusoid playground: one task, three initialisations, every step.

No JAX recompilation when a control moves: the support set is always ``MAX_SHOTS``
points with a 0/1 mask selecting the first K, the inner loop always runs
``MAX_STEPS`` steps and keeps its trajectory (the steps slider just picks one), and
α is a traced argument. :func:`adapt` and :func:`plot_data` are pure; the widget in
:mod:`.sinusoid_playground` only draws what they return.
"""
import importlib.resources
from typing import NamedTuple

import jax
import numpy as np

from ..checks import check_int, check_positive
from ..maml import inner_loop
from ..nets import mlp_apply
from ..sinusoid import (AMPLITUDE_RANGE, INPUT_RANGE, PHASE_RANGE, SineTasks, load_params,
                        sine_loss)
from ..types import PyTree

MAX_SHOTS = 50              # K slider: 1..MAX_SHOTS
MAX_STEPS = 50              # steps slider: 0..MAX_STEPS
INNER_LR_RANGE = (1e-3, 1.0)  # α slider (log scale)
QUERY_POINTS = 100          # held-out points of the task that the MSE readout uses
GRID = np.linspace(*INPUT_RANGE, 200, dtype=np.float32)[:, None]  # (200, 1) plot inputs
Y_LIMIT = 6.0               # the plot's y-range; amplitudes are at most 5
Y_CLIP = Y_LIMIT            # predictions are clipped to the visible range: a diverged line
                            # runs along the plot's edge instead of vanishing
DIVERGED_MSE = 1e3          # a query MSE above this (or not finite) counts as diverged
MSE_CLIP = (1e-3, 1e3)      # range of the plotted MSE curves (the log axis shows all of it)


def load_shipped_params() -> tuple[PyTree, PyTree]:
    """The sinusoid MAML and pretrained parameters shipped with the package (paper config).

    Returns ``(maml_params, pretrained_params)``; see ``minimaml/data/README.md``.
    """
    data = importlib.resources.files("minimaml") / "data"
    with importlib.resources.as_file(data / "sinusoid_maml.npz") as path:
        maml_params = load_params(path)
    with importlib.resources.as_file(data / "sinusoid_pretrained.npz") as path:
        pretrained_params = load_params(path)
    return maml_params, pretrained_params


def sample_task(seed: int, index: int = 0) -> SineTasks:
    """Task number ``index`` of the playground's sequence for ``seed`` (numpy arrays).

    A :class:`minimaml.sinusoid.SineTasks` of ONE task (no task axis) from p(T):
    amplitude and phase are scalars, support_x/support_y: (MAX_SHOTS, 1),
    query_x/query_y: (QUERY_POINTS, 1). A K-shot support set is the first K support
    points. Drawn with numpy (``default_rng([seed, index])``): nothing to compile.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    amplitude = np.float32(rng.uniform(*AMPLITUDE_RANGE))
    phase = np.float32(rng.uniform(*PHASE_RANGE))
    x = rng.uniform(*INPUT_RANGE, size=(MAX_SHOTS + QUERY_POINTS, 1)).astype(np.float32)
    y = (amplitude * np.sin(x - phase)).astype(np.float32)
    return SineTasks(amplitude, phase, x[:MAX_SHOTS], y[:MAX_SHOTS], x[MAX_SHOTS:],
                     y[MAX_SHOTS:])


def check_params(params: PyTree, name: str = "params") -> None:
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
    _, trajectory = inner_loop(params, sine_loss, (support_x, support_y, support_mask),
                               inner_lr, MAX_STEPS, trajectory=True)
    predictions = jax.vmap(mlp_apply, in_axes=(0, None))(trajectory.params, GRID)[..., 0]
    query_mse = jax.vmap(sine_loss, in_axes=(0, None))(trajectory.params, (query_x, query_y))
    return predictions, query_mse, trajectory.losses


def _dispatch(params, task, shots, inner_lr):
    check_int(shots, "shots (K)", 1, MAX_SHOTS)
    check_positive(inner_lr, "inner_lr")
    mask = (np.arange(MAX_SHOTS) < shots).astype(np.float32)
    return _adapt(params, task.support_x, task.support_y, mask, task.query_x, task.query_y,
                  np.float32(inner_lr))


def adapt(params: PyTree, task: SineTasks, shots: int, inner_lr: float) -> "Adaptation":
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


def diverged_at(adaptation: "Adaptation") -> int | None:
    """First step whose query MSE is not finite or above DIVERGED_MSE, else None."""
    bad = ~np.isfinite(adaptation.query_mse) | (adaptation.query_mse > DIVERGED_MSE)
    bad |= ~np.all(np.isfinite(adaptation.predictions), axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def clipped(adaptation: Adaptation) -> tuple[np.ndarray, np.ndarray]:
    """Every step's predictions clipped to ±Y_CLIP, (MAX_STEPS + 1, len(GRID)), and the
    query MSE curve clipped to MSE_CLIP, (MAX_STEPS + 1,): all finite, all on the plot."""
    predictions = np.nan_to_num(adaptation.predictions, nan=Y_CLIP, posinf=Y_CLIP,
                                neginf=-Y_CLIP)
    curve = np.nan_to_num(adaptation.query_mse, nan=MSE_CLIP[1], posinf=MSE_CLIP[1])
    return np.clip(predictions, -Y_CLIP, Y_CLIP), np.clip(curve, *MSE_CLIP)


def view(adaptation: Adaptation, steps: int) -> PlotData:
    """The :class:`PlotData` of ``adaptation`` after ``steps`` steps (no JAX involved)."""
    check_int(steps, "steps", 0, MAX_STEPS)
    predictions = np.nan_to_num(adaptation.predictions[steps], nan=Y_CLIP,
                                posinf=Y_CLIP, neginf=-Y_CLIP)
    curve = np.nan_to_num(adaptation.query_mse, nan=MSE_CLIP[1], posinf=MSE_CLIP[1])
    return PlotData(np.clip(predictions, -Y_CLIP, Y_CLIP), np.clip(curve, *MSE_CLIP),
                    float(adaptation.query_mse[steps]), diverged_at(adaptation))


def plot_data(params: PyTree, task: SineTasks, shots: int, inner_lr: float,
              steps: int) -> "PlotData":
    """What the playground plots for ``params`` at these slider settings: a :class:`PlotData`."""
    return view(adapt(params, task, shots, inner_lr), steps)
