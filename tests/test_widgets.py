"""The playground widget, headless: what it draws is the library's answer, sliders never
recompile, a diverging α is shown and clipped, bad input is refused."""
import base64
import contextlib
import io
import re

import jax
import numpy as np
import pytest

from minimaml import sinusoid
from minimaml.maml import inner_loop
from minimaml.nets import mlp_apply
from minimaml.widgets.sinusoid_adaptation import _adapt
from minimaml.widgets import (COLORS, GRID, INITS, MAX_SHOTS, MAX_STEPS, Y_CLIP,
                              load_shipped_params, plot_data, playground, sample_task)


@pytest.fixture(scope="module")
def pg():
    return playground(seed=0)


@contextlib.contextmanager
def count_compilations():
    """Count every JAX trace/compile (jax.monitoring events) inside the block."""
    events = []

    def listener(event, duration, **kwargs):
        if event.startswith("/jax/core/compile"):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def direct(params, task, shots, inner_lr, steps):
    """The same numbers straight from the library, on the unpadded K-point support set:
    predictions on GRID (len(GRID),) and query MSE after ``steps`` SGD steps."""
    support = task.support_x[:shots], task.support_y[:shots]
    adapted = inner_loop(params, sinusoid.sine_loss, support, inner_lr, steps)
    query_mse = sinusoid.sine_loss(adapted, (task.query_x, task.query_y))
    return np.asarray(mlp_apply(adapted, GRID)[:, 0]), float(query_mse)


def named_inits(pg, maml_params=None, pretrained_params=None):
    """The θ each label must be drawn from: the ones given to playground() (default: the
    shipped files), not the widget's own dict; "random" has no other source."""
    shipped_maml, shipped_pretrained = load_shipped_params()
    return {"MAML": shipped_maml if maml_params is None else maml_params,
            "pretrained": shipped_pretrained if pretrained_params is None else pretrained_params,
            "random": pg.inits["random"]}


def readout_numbers(pg):
    return dict(zip(INITS, re.findall(r"class='minimaml-mse'>([^<]+)<", pg.readout.value)))


@pytest.mark.parametrize("shots, inner_lr, steps", [(7, 0.02, 13), (1, 0.001, 0), (50, 0.03, 3)])
def test_plotted_data_is_the_library_computation(pg, shots, inner_lr, steps):
    pg.shots_slider.value = shots
    pg.inner_lr_slider.value = inner_lr
    pg.steps_slider.value = steps
    inner_lr = pg.inner_lr_slider.value   # what the log slider actually holds
    task = pg.task
    np.testing.assert_allclose(pg.drawing.truth_line.get_ydata(),
                               task.amplitude * np.sin(GRID[:, 0] - task.phase), rtol=1e-6)
    np.testing.assert_array_equal(pg.drawing.support_dots.get_xdata(), task.support_x[:shots, 0])
    np.testing.assert_array_equal(pg.drawing.support_dots.get_ydata(), task.support_y[:shots, 0])
    shown = readout_numbers(pg)
    expected_inits = named_inits(pg)
    for name in INITS:
        assert pg.current[name].diverged_at is None   # (α ≥ 0.05 can diverge from MAML's init)
        predictions, query_mse = direct(expected_inits[name], task, shots, inner_lr, steps)
        np.testing.assert_allclose(pg.drawing.pred_lines[name].get_ydata(), predictions,
                                   rtol=1e-4, atol=1e-4)
        assert pg.current[name].query_mse == pytest.approx(query_mse, rel=1e-4, abs=1e-6)
        assert float(shown[name]) == pytest.approx(query_mse, rel=5e-3)
        assert pg.drawing.mse_dots[name].get_ydata()[0] == pytest.approx(query_mse, rel=1e-4)
    assert f"after {steps} step" in pg.readout.value
    assert pg.note.value == ""


def test_mse_curve_and_plot_data_match_the_library():
    task = sample_task(3, 2)
    params = load_shipped_params()[0]
    data = plot_data(params, task, 10, 0.01, 50)
    support = task.support_x[:10], task.support_y[:10]
    _, trajectory = inner_loop(params, sinusoid.sine_loss, support, 0.01, 50, trajectory=True)
    curve = jax.vmap(sinusoid.sine_loss, in_axes=(0, None))(trajectory.params,
                                                             (task.query_x, task.query_y))
    np.testing.assert_allclose(data.mse_curve, curve, rtol=1e-4)
    predictions = sinusoid.adaptation_predictions(params, *support, GRID, 0.01, 50)
    np.testing.assert_allclose(data.predictions, predictions[50, :, 0], rtol=1e-4, atol=1e-4)
    assert data.query_mse == pytest.approx(float(curve[50]), rel=1e-4)
    assert data.diverged_at is None


def test_no_recompilation_when_any_control_moves(pg):
    with count_compilations() as events:     # the counter does see a fresh compile
        jax.jit(lambda x: x * 3.0 + 1.0)(np.ones(3, np.float32))
    assert events, "jax.monitoring no longer reports compilations; the test below is blind"

    cache_size = _adapt._cache_size()
    with count_compilations() as events:
        for shots in (1, 2, 17, MAX_SHOTS, 10):
            pg.shots_slider.value = shots
        for inner_lr in (0.001, 0.0316, 1.0, 0.01):
            pg.inner_lr_slider.value = inner_lr
        for steps in (0, 1, 25, MAX_STEPS, 10):
            pg.steps_slider.value = steps
        pg.new_task_button.click()
        pg.new_task_button.click()
    assert events == [], f"a control move recompiled: {events}"
    assert _adapt._cache_size() == cache_size


def test_diverging_alpha_is_shown_and_clipped(pg):
    pg.inner_lr_slider.value = 1.0
    pg.steps_slider.value = 50
    diverged = [n for n, d in pg.current.items()
                if d.diverged_at is not None and d.diverged_at <= 50]
    assert diverged, "α = 1 for 50 steps should diverge for the shipped MAML params"
    assert "diverged" in pg.note.value and "smaller α" in pg.note.value
    assert pg.drawing.diverged_text.get_text().startswith("diverged")
    for name in diverged:
        assert readout_numbers(pg)[name] == "diverged"
    for name in INITS:
        y = np.asarray(pg.drawing.pred_lines[name].get_ydata())
        assert np.all(np.isfinite(y)) and np.all(np.abs(y) <= Y_CLIP)
        assert np.all(np.isfinite(pg.drawing.mse_lines[name].get_ydata()))
    assert np.array_equal(decode_png(pg.snapshot_png()), pixels(pg))  # the frame as drawn
    pg.inner_lr_slider.value = 0.01           # back to normal: the note goes away
    assert pg.note.value == "" and pg.drawing.diverged_text.get_text() == ""


def pixels(pg):
    return np.asarray(pg.figure.canvas.get_renderer().buffer_rgba()).copy()


def decode_png(data):
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def test_blitted_frame_equals_a_fresh_drawing():
    moved = playground(seed=2)
    moved.figure.savefig(io.BytesIO(), format="png")   # as ipympl's download button does
    moved.shots_slider.value = 13
    moved.steps_slider.value = 3
    fresh = playground(seed=2, shots=13, steps=3)
    assert np.array_equal(pixels(moved), pixels(fresh)), "stale or doubled lines after a blit"


def test_new_task_is_reproducible(pg):
    before = pg.task_index
    pg.new_task_button.click()
    assert pg.task_index == before + 1
    again = sample_task(pg.seed, pg.task_index)
    np.testing.assert_array_equal(pg.task.support_x, again.support_x)
    assert pg.task.support_x.shape == (MAX_SHOTS, 1)
    assert pg.task.amplitude != sample_task(pg.seed, before).amplitude


def test_static_picture_for_viewers_without_a_kernel(pg):
    bundle = pg._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    # the picture is the figure as it is drawn now
    picture = decode_png(base64.b64decode(bundle["image/png"]))
    assert np.array_equal(picture, pixels(pg))
    # ... with every network's line in it (its colour appears)
    from matplotlib.colors import to_rgb
    colours = {tuple(c) for c in picture[..., :3].reshape(-1, 3)}
    for name in INITS:
        assert tuple(round(255 * v) for v in to_rgb(COLORS[name])) in colours, name


def test_accepts_any_mlp_params():
    # e.g. a reader's own, smaller network (random weights stand in for trained ones)
    maml_params = sinusoid.init_params(jax.random.key(5), hidden=(16,))
    pre = sinusoid.init_params(jax.random.key(6), hidden=(16,))
    small = playground(maml_params, pre, seed=1, shots=5, inner_lr=0.1, steps=4)
    assert len(small.inits["random"]) == len(maml_params)  # random is shaped like MAML's
    expected_inits = named_inits(small, maml_params, pre)
    for name in INITS:
        predictions, _ = direct(expected_inits[name], small.task, 5, 0.1, 4)
        np.testing.assert_allclose(small.drawing.pred_lines[name].get_ydata(), predictions,
                                   rtol=1e-4, atol=1e-4)


def test_shipped_params_are_the_trained_ones():
    maml_params, pre_params = load_shipped_params()
    tasks = sinusoid.sample_tasks(jax.random.key(123), 200, 10, 100)
    from minimaml.evaluate import finetune_curves
    maml_mse = finetune_curves(maml_params, sinusoid.sine_loss, tasks.support, tasks.query,
                               0.01, 1).mean(axis=0)
    pre_mse = finetune_curves(pre_params, sinusoid.sine_loss, tasks.support, tasks.query,
                              0.01, 1).mean(axis=0)
    # data/README.md: K=10 after one step, MAML 0.37, pretrained 2.34 (600 tasks).
    assert maml_mse[1] < 0.6 < 1.5 < pre_mse[1]
    assert maml_mse[1] < 0.5 * maml_mse[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"shots": 0}, "shots"), ({"shots": 51}, "shots"), ({"shots": 2.5}, "shots"),
    ({"inner_lr": 0.0}, "inner_lr"), ({"inner_lr": 2.0}, "inner_lr"),
    ({"inner_lr": float("nan")}, "inner_lr"), ({"steps": -1}, "steps"),
    ({"steps": 51}, "steps"), ({"seed": -3}, "seed"),
    ({"maml_params": "weights.npz"}, "maml_params"),
    ({"pretrained_params": [{"w": np.ones((2, 1)), "b": np.ones(1)}]}, "pretrained_params"),
    ({"random_params": [{"w": np.full((1, 1), np.nan), "b": np.ones(1)}]}, "random_params"),
])
def test_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        playground(**kwargs)
