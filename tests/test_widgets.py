"""The widgets, headless: what they draw is the library's answer, no control recompiles,
stills state the control values, bad input is refused. (In the browser: test_browser.py.)"""
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimaml import sinusoid
from minimaml.evaluate import finetune_curves
from minimaml.maml import inner_loop, maml_objective
from minimaml.nets import mlp_apply
from minimaml.widgets import (GRID, INITS, MAX_SHOTS, MAX_STEPS, Y_LIMIT, load_shipped_params,
                              plot_data, playground, sample_task)
from minimaml.widgets.sinusoid_adaptation import _adapt


@pytest.fixture(scope="module")
def pg():
    return playground(seed=0)


def direct(params, task, shots, inner_lr, steps):
    """The same numbers straight from the library, on the unpadded K-point support set:
    predictions on GRID (len(GRID),) and query MSE after ``steps`` SGD steps."""
    support = task.support_x[:shots], task.support_y[:shots]
    adapted = inner_loop(params, sinusoid.sine_loss, support, inner_lr, steps)
    query_mse = sinusoid.sine_loss(adapted, (task.query_x, task.query_y))
    return np.asarray(mlp_apply(adapted, GRID)[:, 0]), float(query_mse)


def drawn(pg):
    """{init: its prediction line as the browser draws it at the slider's step}, and the
    truth line."""
    (group,), (fit,) = pg.drawing.groups, pg.drawing.fits
    return dict(zip(group, fit.frame(pg.steps_slider.value))), fit.static_curves()[0]


def readout_numbers(pg):
    return dict(zip(INITS, re.findall(r"class='minimaml-mse'>([^<]+)<", pg.readout.value)))


@pytest.mark.parametrize("shots, inner_lr, steps", [(7, 0.02, 13), (1, 0.001, 0), (50, 0.03, 3)])
def test_plotted_data_is_the_library_computation(pg, shots, inner_lr, steps):
    pg.shots_slider.value = shots
    pg.inner_lr_slider.value = inner_lr
    pg.steps_slider.value = steps
    inner_lr = pg.inner_lr_slider.value   # what the log slider actually holds
    task = pg.task
    lines, truth = drawn(pg)
    np.testing.assert_allclose(truth, task.amplitude * np.sin(GRID[:, 0] - task.phase),
                               rtol=1e-5, atol=1e-5)
    support = pg.drawing.fits[0].point_data()
    np.testing.assert_array_equal(support[:, 0], task.support_x[:shots, 0])
    np.testing.assert_array_equal(support[:, 1], task.support_y[:shots, 0])
    shown = readout_numbers(pg)
    for name in INITS:
        assert pg.current[name].diverged_at is None   # (α ≥ 0.05 can diverge from MAML's init)
        # The θ each label names, from the files, not the widget's own dict.
        theta = {"MAML": load_shipped_params()[0], "pretrained": load_shipped_params()[1],
                 "random": pg.inits["random"]}[name]
        predictions, query_mse = direct(theta, task, shots, inner_lr, steps)
        np.testing.assert_allclose(lines[name], predictions, rtol=1e-4, atol=1e-4)
        assert pg.current[name].query_mse == pytest.approx(query_mse, rel=1e-4, abs=1e-6)
        assert float(shown[name]) == pytest.approx(query_mse, rel=5e-3)
    np.testing.assert_allclose(pg.drawing.mse.static_curves(),       # dots sit on these
                               [pg.current[n].mse_curve for n in INITS], rtol=1e-6)
    assert f"α = {inner_lr:#.3g}, {steps} step" in pg.readout.value
    assert pg.note.value == ""


def test_mse_curve_and_plot_data_match_the_library():
    task = sample_task(3, 2)
    params = load_shipped_params()[0]
    data = plot_data(params, task, 10, 0.01, 50)
    support = task.support_x[:10], task.support_y[:10]
    _, trajectory = inner_loop(params, sinusoid.sine_loss, support, 0.01, 50, trajectory=True)
    curve = jax.vmap(sinusoid.sine_loss, in_axes=(0, None))(trajectory.params,
                                                             (task.query_x, task.query_y))
    np.testing.assert_allclose(data.mse_curve, np.clip(curve, 1e-3, 1e3), rtol=1e-4)
    predictions = sinusoid.adaptation_predictions(params, *support, GRID, 0.01, 50)
    np.testing.assert_allclose(data.predictions, predictions[50, :, 0], rtol=1e-4, atol=1e-4)
    assert data.query_mse == pytest.approx(float(curve[50]), rel=1e-4)
    assert data.diverged_at is None


def test_no_recompilation_when_any_control_moves(pg, count_compilations):
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


def test_diverging_alpha_is_shown_and_kept_on_the_plot(pg):
    pg.inner_lr_slider.value = 1.0
    pg.steps_slider.value = 50
    diverged = [n for n, d in pg.current.items()
                if d.diverged_at is not None and d.diverged_at <= 50]
    assert diverged, "α = 1 for 50 steps should diverge for the shipped MAML params"
    assert "diverged" in pg.note.value and "smaller α" in pg.note.value
    assert "diverged: " + ", ".join(diverged) in pg.still_figure()._suptitle.get_text()
    for name in diverged:
        assert readout_numbers(pg)[name] == "diverged"
    lines, _ = drawn(pg)
    for name in INITS:   # every line stays inside the visible y-range
        assert np.all(np.isfinite(lines[name])) and np.all(np.abs(lines[name]) <= Y_LIMIT)
    assert np.all(np.isfinite(pg.drawing.mse.static_curves()))
    frames = np.frombuffer(pg.drawing.fits[0].frames, np.float32)   # every step, every init
    assert np.all(np.isfinite(frames)) and np.all(np.abs(frames) <= Y_LIMIT)
    assert pg.snapshot_png().startswith(b"\x89PNG")
    pg.inner_lr_slider.value = 0.01           # back to normal: the note goes away
    assert pg.note.value == "" and "diverged" not in pg.still_figure()._suptitle.get_text()


def test_still_title_states_the_control_values():
    small = playground(seed=2, shots=13, steps=3, inner_lr=0.0316)
    title = small.still_figure()._suptitle.get_text()
    assert "K = 13, α = 0.0316, 3 steps" in title
    assert f"A = {small.task.amplitude:.2f}" in title
    assert "α = 0.0316" in small.readout.value          # α written the same way everywhere
    assert "α = 0.0100" in playground(seed=2).readout.value   # as the slider: d3 ".3g"
    bundle = small._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"].startswith("iVBOR")     # base64 of the PNG signature
    assert small.status.value == ""                    # "compiling…" is gone after the draw
    assert 0 < small.first_draw_seconds < 120


def test_ipympl_renderer_blits_the_same_frame_as_a_fresh_drawing():
    import io
    moved = playground(seed=2, renderer="ipympl")
    moved.drawing.figure.savefig(io.BytesIO(), format="png")   # as ipympl's download does
    moved.shots_slider.value = 13
    moved.steps_slider.value = 3
    fresh = playground(seed=2, shots=13, steps=3, renderer="ipympl")

    def pixels(p):
        return np.asarray(p.drawing.canvas.get_renderer().buffer_rgba()).copy()
    assert np.array_equal(pixels(moved), pixels(fresh)), "stale or doubled lines after a blit"


def test_new_task_is_reproducible_and_from_p_of_t(pg):
    before = pg.task_index
    pg.new_task_button.click()
    assert pg.task_index == before + 1
    again = sample_task(pg.seed, pg.task_index)
    np.testing.assert_array_equal(pg.task.support_x, again.support_x)
    assert pg.task.support_x.shape == (MAX_SHOTS, 1)
    assert pg.task.amplitude != sample_task(pg.seed, before).amplitude
    tasks = [sample_task(0, i) for i in range(200)]
    amplitudes = np.array([t.amplitude for t in tasks])
    assert 0.1 <= amplitudes.min() and amplitudes.max() <= 5.0 and amplitudes.std() > 1.0
    t = tasks[0]
    np.testing.assert_allclose(t.support_y, t.amplitude * np.sin(t.support_x - t.phase),
                               rtol=1e-5, atol=1e-5)


def test_controls_keep_usable_sizes(pg):
    for slider in (pg.shots_slider, pg.inner_lr_slider, pg.steps_slider):
        assert slider.layout.min_width == "250px"
    assert pg.new_task_button.layout.min_width == "max-content"
    assert pg.new_task_button.tooltip and pg.play.tooltip
    assert all(f.layout.width == "auto" for f in pg.drawing.fits)   # figures follow the width


def test_accepts_any_mlp_params():
    # e.g. a reader's own, smaller network (random weights stand in for trained ones)
    maml_params = sinusoid.init_params(jax.random.key(5), hidden=(16,))
    pre = sinusoid.init_params(jax.random.key(6), hidden=(16,))
    small = playground(maml_params, pre, seed=1, shots=5, inner_lr=0.1, steps=4)
    assert len(small.inits["random"]) == len(maml_params)  # random is shaped like MAML's
    assert small.caption.value == ""                       # no "shipped θ" line for own θ
    lines, _ = drawn(small)
    for name in INITS:
        theta = {"MAML": maml_params, "pretrained": pre, "random": small.inits["random"]}[name]
        predictions, _ = direct(theta, small.task, 5, 0.1, 4)
        np.testing.assert_allclose(lines[name], predictions, rtol=1e-4, atol=1e-4)


def test_shipped_params_are_the_trained_ones():
    maml_params, pre_params = load_shipped_params()
    tasks = sinusoid.sample_tasks(jax.random.key(123), 200, 10, 100)
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
    ({"steps": 51}, "steps"), ({"seed": -3}, "seed"), ({"renderer": "bqplot"}, "renderer"),
    ({"maml_params": "weights.npz"}, "maml_params"),
    ({"pretrained_params": [{"w": np.ones((2, 1)), "b": np.ones(1)}]}, "pretrained_params"),
    ({"random_params": [{"w": np.full((1, 1), np.nan), "b": np.ones(1)}]}, "random_params"),
])
def test_bad_input_names_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        playground(**kwargs)


def test_every_exported_name_survives_importing_every_submodule():
    # a submodule named like a function would replace it on the package once imported
    import importlib
    import pkgutil
    import minimaml.widgets as w
    for info in pkgutil.iter_modules(w.__path__):
        importlib.import_module(f"minimaml.widgets.{info.name}")
    assert callable(w.playground) and not isinstance(w.playground, type(w))
    for name in w.__all__:
        assert not isinstance(getattr(w, name), type(w)), name


def test_importing_the_package_loads_no_widget_library():
    code = ("import sys, minimaml.widgets as w; "
            "assert not {'ipywidgets', 'anywidget', 'matplotlib'} & set(sys.modules), "
            "sorted({'ipywidgets', 'anywidget', 'matplotlib'} & set(sys.modules)); "
            "assert callable(w.omniglot_adaptation)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


# -- chapter 2: second- vs first-order meta-gradients ------------------------------------

@pytest.fixture(scope="module")
def explorer():
    from minimaml.widgets import second_order_explorer
    return second_order_explorer(seed=0, inner_lr=0.01)


def test_meta_gradients_are_jax_grad_of_the_objective(explorer):
    from minimaml.widgets.gradients import ALPHAS, alpha_index
    explorer.inner_lr_slider.index = alpha_index(0.1)
    i = explorer.inner_lr_slider.index
    assert ALPHAS[i] == pytest.approx(explorer.inner_lr_slider.value, rel=1e-3)
    tasks = explorer._tasks()
    params = explorer.thetas[explorer.theta_buttons.value]
    second = jax.grad(maml_objective)(params, sinusoid.sine_loss, tasks.support, tasks.query,
                                      ALPHAS[i], 1)
    first = jax.grad(maml_objective)(params, sinusoid.sine_loss, tasks.support, tasks.query,
                                     ALPHAS[i], 1, first_order=True)
    for layer in range(len(params)):
        g2 = np.concatenate([np.ravel(a) for a in jax.tree.leaves(second[layer])])
        g1 = np.concatenate([np.ravel(a) for a in jax.tree.leaves(first[layer])])
        g = explorer.gradients
        assert g.second[i, layer] == pytest.approx(np.linalg.norm(g2), rel=1e-3)
        assert g.first[i, layer] == pytest.approx(np.linalg.norm(g1), rel=1e-3)
        assert g.dropped[i, layer] == pytest.approx(np.linalg.norm(g2 - g1), rel=1e-2)
        cos = g2 @ g1 / np.linalg.norm(g2) / np.linalg.norm(g1)
        assert g.angle[i, layer] == pytest.approx(np.degrees(np.arccos(min(cos, 1.0))), abs=0.5)
    assert f"α = {explorer.inner_lr_slider.value:#.3g}" in explorer.readout.value
    assert f"α = {explorer.inner_lr_slider.value:#.3g}" in explorer.still_figure()._suptitle.get_text()


def test_dropped_term_shrinks_with_alpha(explorer):
    from minimaml.widgets.gradients import ALPHAS, alpha_index
    small, ten_times = alpha_index(1e-3), alpha_index(1e-2)
    assert ALPHAS[ten_times] == pytest.approx(10 * ALPHAS[small], rel=1e-3)
    g = explorer.gradients                  # MAML θ: ∇L_Q(θ') itself changes with α
    assert g.dropped[small, -1] / g.dropped[ten_times, -1] < 0.5
    explorer.theta_buttons.value = "random init"   # there it barely does: the term is α·H·∇L_Q
    g = explorer.gradients
    assert 0.08 < g.dropped[small, -1] / g.dropped[ten_times, -1] < 0.12
    explorer.theta_buttons.value = "MAML θ (shipped)"


def test_explorer_never_recompiles(explorer, count_compilations):
    from minimaml.widgets.gradients import alpha_index
    with count_compilations() as events:
        for value in (0.001, 0.5, 0.02):
            explorer.inner_lr_slider.index = alpha_index(value)
        explorer.theta_buttons.value = "random init"
        explorer.new_tasks_button.click()
        explorer.theta_buttons.value = "MAML θ (shipped)"
    assert events == [], events


# -- chapter 3: the meta-training scrubber -----------------------------------------------

@pytest.fixture(scope="module")
def scrubber():
    from minimaml.widgets import meta_training_scrubber
    return meta_training_scrubber(seed=0)


def test_snapshots_are_the_shipped_run():
    from minimaml.widgets import SNAPSHOT_STEPS, load_snapshots
    steps, stacked = load_snapshots()
    assert steps == SNAPSHOT_STEPS
    last = jax.tree.map(lambda a: a[-1], stacked)
    for a, b in zip(jax.tree.leaves(last), jax.tree.leaves(load_shipped_params()[0])):
        np.testing.assert_array_equal(a, b)
    first = jax.tree.map(lambda a: a[0], stacked)
    init = sinusoid.init_params(jax.random.split(jax.random.key(0), 3)[0])
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(init)):
        np.testing.assert_array_equal(a, b)


def test_scrubber_draws_the_library_computation(scrubber):
    from minimaml.widgets.scrubber import FIT_STEPS, INNER_LR, SHOTS, TEST_STEPS, TEST_TASKS
    scrubber.snapshot_slider.value = 3
    params = jax.tree.map(lambda a: a[3], scrubber.stacked)
    task = scrubber.task
    rows = scrubber.fit.frame(3)
    for row, steps in zip(rows, FIT_STEPS):
        predictions, _ = direct(params, task, SHOTS, INNER_LR, steps)
        np.testing.assert_allclose(row, predictions, rtol=1e-4, atol=1e-4)
    tasks = sinusoid.sample_tasks(jax.random.fold_in(jax.random.key(0), 10_000), TEST_TASKS,
                                  SHOTS, 100)
    curve = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, INNER_LR,
                            TEST_STEPS).mean(axis=0)
    np.testing.assert_allclose(scrubber.test.frame(3)[0], curve, rtol=1e-4)
    assert "θ after 1,000 of 70,000 meta-steps" in scrubber.still_figure()._suptitle.get_text()
    # meta-training made one step count: the last θ's 1-step meta-test MSE is far below the first's
    assert scrubber.test_curves[-1, 1] < 0.3 * scrubber.test_curves[0, 1]


def test_scrubber_never_recompiles(scrubber, count_compilations):
    with count_compilations() as events:
        for i in (0, 6, 2):
            scrubber.snapshot_slider.value = i
        scrubber.new_task_button.click()
    assert events == [], events


# -- chapter 5: first- vs second-order MAML -----------------------------------------------

def test_first_vs_second_order_adapts_both_on_one_task(count_compilations):
    from minimaml.widgets import first_vs_second_order, load_first_order_params
    widget = first_vs_second_order(seed=1, steps=1)
    first = load_first_order_params()
    assert len(widget.drawing.fits) == 2                        # side by side
    assert not np.array_equal(jax.tree.leaves(first)[0],
                              jax.tree.leaves(load_shipped_params()[0])[0])
    named = {"second-order MAML": load_shipped_params()[0], "first-order MAML": first}
    assert sorted(g[0] for g in widget.drawing.groups) == sorted(named)
    for group, fit in zip(widget.drawing.groups, widget.drawing.fits):
        predictions, _ = direct(named[group[0]], widget.task, 10, 0.01, 1)
        np.testing.assert_allclose(fit.frame(1)[0], predictions, rtol=1e-4, atol=1e-4)
    assert "first-order θ" in widget.caption.value or "first-order" in widget.caption.value
    with count_compilations() as events:
        widget.shots_slider.value = 5
        widget.inner_lr_slider.value = 0.02
        widget.steps_slider.value = 7
        widget.new_task_button.click()
    assert events == [], events
    # the shipped first-order θ is meta-trained too: one step helps on average
    tasks = sinusoid.sample_tasks(jax.random.key(7), 100, 10, 100)
    mse = finetune_curves(first, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 1)
    assert mse[:, 1].mean() < 0.5 * mse[:, 0].mean()


# -- chapter 6: Omniglot adaptation --------------------------------------------------------

@pytest.fixture(scope="module")
def omniglot_data():
    from minimaml import omniglot
    try:
        return omniglot.load(progress=False)
    except (FileNotFoundError, omniglot.DataUnavailable) as err:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but Omniglot is not available: {err}")
        pytest.skip(f"Omniglot not available: {err}")


@pytest.fixture(scope="module")
def omni(omniglot_data):
    from minimaml.widgets import omniglot_adaptation
    return omniglot_adaptation(seed=0, data=omniglot_data)


def test_omniglot_probabilities_are_the_library_computation(omni):
    from minimaml.nets import conv_apply
    from minimaml.omniglot import classifier, query_groups
    omni.steps_slider.value = 2
    t = omni.task
    _, loss_fn = classifier()
    adapted = inner_loop(omni.params, loss_fn, (t.support_x, t.support_y),
                         omni.inner_lr_slider.value, 2)
    groups, _ = query_groups(jnp.asarray(t.query_x), jnp.asarray(t.query_y), 5, 1)
    probs = np.stack([jax.nn.softmax(conv_apply(adapted, g)) for g in groups])  # (Q, N, N)
    expected = np.swapaxes(probs, 0, 1).reshape(-1, 5)
    np.testing.assert_allclose(omni.probabilities[2], expected, rtol=1e-3, atol=1e-4)
    assert "2 steps" in omni.readout.value and "2 steps" in omni.still_figure()._suptitle.get_text()
    assert omni.query_view.value.count("<img") == len(t.query_y)
    assert omni.support_view.value.count("<img") == 5


def test_omniglot_shipped_theta_adapts_to_new_characters(omni):
    accuracies = []
    for _ in range(4):
        omni.new_task_button.click()
        accuracies.append(omni.accuracy[1])
    assert np.mean(accuracies) >= 0.7, accuracies      # chance is 0.2


def test_omniglot_never_recompiles(omni, count_compilations):
    with count_compilations() as events:
        omni.inner_lr_slider.value = 0.1
        for steps in (0, 10, 3):
            omni.steps_slider.value = steps
        omni.new_task_button.click()
    assert events == [], events


def test_omniglot_refuses_other_params():
    from minimaml.widgets import omniglot_adaptation
    with pytest.raises(ValueError, match="params"):
        omniglot_adaptation(params=[{"w": np.ones((3, 3, 1, 8))}])
    with pytest.raises(ValueError, match="inner_lr"):
        omniglot_adaptation(inner_lr=5.0)


# -- the chapters' widget cells --------------------------------------------------------------

def _widget_cells():
    import nbformat
    notebooks = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks")
                       .glob("[0-9][0-9]_*.ipynb"))
    return [(path.name, index, cell.source) for path in notebooks
            for index, cell in enumerate(nbformat.read(path, as_version=4).cells)
            if "widget" in cell.metadata.get("tags", [])]


@pytest.mark.slow
@pytest.mark.parametrize("notebook, index, source", _widget_cells(),
                         ids=lambda v: str(v)[:20] if not isinstance(v, str) or "\n" not in v
                         else "cell")
def test_widget_cell_runs_alone_in_a_fresh_kernel(notebook, index, source):
    """As after a kernel restart: only this cell, nothing above it. It must show the widget
    (and its still) without an error."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source)]
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    shown = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(shown) == 1, f"{notebook} cell {index}: shown {len(shown)} times"
    assert "image/png" in shown[0]["data"], "no still for viewers without a kernel"


def test_each_widget_stands_in_the_chapter_that_teaches_its_idea():
    expected = {"02_grad_of_grad.ipynb": "second_order_explorer(",
                "03_maml_sinusoid.ipynb": "meta_training_scrubber(",
                "05_first_vs_second_order.ipynb": "first_vs_second_order(",
                "06_omniglot.ipynb": "omniglot_adaptation(",
                "07_playground.ipynb": "playground(",
                "08_beyond_maml.ipynb": "family_widget("}
    cells = _widget_cells()
    for notebook, call in expected.items():
        assert any(name == notebook and call in source for name, _, source in cells), \
            f"{notebook} has no widget cell calling {call}...)"
