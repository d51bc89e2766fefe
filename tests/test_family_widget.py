"""Chapter 8's widget (minimaml/widgets/family.py), headless: each panel is the library's
fine-tuning of that variant, sliders never recompile, bad input is refused."""
import matplotlib
import numpy as np
import pytest

from minimaml import family
from minimaml.family import ALGORITHMS
from minimaml.nets import mlp_apply
from minimaml.sinusoid import sine_loss
from minimaml.widgets.family import adapt, family_widget, shipped_learners
from minimaml.widgets.sinusoid_adaptation import GRID, MAX_STEPS, sample_task

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def learners():
    return shipped_learners()


@pytest.fixture(scope="module")
def widget(learners):
    return family_widget(learners)


def test_every_variant_is_shipped_with_its_way_of_fine_tuning(learners):
    assert tuple(learners) == ALGORITHMS
    assert learners["metasgd"].learned_lr and not learners["metasgd"].lr_per_step
    assert learners["mamlpp"].lr_per_step and learners["mamlpp"].learned_lr
    assert learners["anil"].adapt == (False,) * 4 + (True, True)
    assert learners["maml"].inner_lr == 0.01 and learners["maml"].adapt is None


@pytest.mark.parametrize("name", ["maml", "metasgd", "anil", "mamlpp"])
def test_panel_is_the_library_fine_tuning(widget, learners, name):
    widget.shots_slider.value = 7
    widget.inner_lr_slider.value = 0.01
    widget.steps_slider.value = 3
    task = widget.task
    support = (task.support_x[:7], task.support_y[:7])
    trajectory = learners[name].trajectory(sine_loss, support, 3)
    adapted = [{"w": layer["w"][3], "b": layer["b"][3]} for layer in trajectory.params]
    expected = np.asarray(mlp_apply(adapted, GRID)[:, 0])
    np.testing.assert_allclose(widget.figure.fit[name].get_ydata(), np.clip(expected, -9, 9),
                               rtol=1e-4, atol=1e-4)
    expected_mse = float(sine_loss(adapted, (task.query_x, task.query_y)))
    shown = float(widget.figure.titles[name].get_text().split()[-1])     # "name: MSE 0.123"
    assert abs(shown - expected_mse) <= 1e-3 + 1e-4 * expected_mse


def test_learned_rates_are_scaled_by_the_alpha_slider(learners):
    task = sample_task(0, 1)
    _, at_trained = adapt(learners["metasgd"], task, 10, 0.01)
    _, doubled = adapt(learners["metasgd"], task, 10, 0.02)
    scaled = family.Learned(learners["metasgd"].params,
                            [{k: 2 * v for k, v in layer.items()}
                             for layer in learners["metasgd"].inner_lr], learned_lr=True)
    _, by_hand = adapt(scaled, task, 10, 0.01)
    np.testing.assert_allclose(doubled, by_hand, rtol=1e-5)
    assert not np.allclose(at_trained, doubled)


def test_sliders_do_not_recompile(widget, count_compilations):
    widget.shots_slider.value = 4
    with count_compilations() as events:
        widget.shots_slider.value = 12
        widget.inner_lr_slider.value = 0.03
        widget.steps_slider.value = MAX_STEPS
        widget.next_task()
    assert events == []


def test_bad_input(learners):
    with pytest.raises(ValueError, match=r"only must be one of maml, fomaml"):
        family_widget(learners, only=("maml", "mamlx"))
    with pytest.raises(ValueError, match=r"inner_lr must be a number in"):
        adapt(learners["maml"], sample_task(0), 5, 5.0)
    with pytest.raises(ValueError, match=r"shots \(K\) must be an integer in 1..50"):
        adapt(learners["maml"], sample_task(0), 0, 0.01)
