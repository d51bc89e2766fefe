"""Meta-training, the pretrained baseline and evaluation (minimaml/train.py, evaluate.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from minimaml import sinusoid
from minimaml.evaluate import finetune_curves, mean_ci95
from minimaml.train import TrainingDiverged, meta_train, optimize, pretrain


def train_small(seed, steps=300, steps_per_call=100, meta_batch=5, inner_lr=0.01, **kwargs):
    key = jax.random.key(seed)
    params = sinusoid.init_params(key)
    return meta_train(params, sinusoid.sine_loss, sinusoid.task_sampler(meta_batch, 10, 10), key,
                      meta_steps=steps, inner_lr=inner_lr, steps_per_call=steps_per_call,
                      **kwargs)


def test_same_seed_gives_identical_parameters():
    a, _, losses_a = train_small(0)
    b, _, losses_b = train_small(0)
    c, _, _ = train_small(1)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(losses_a, losses_b)
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c)))


def test_chunking_does_not_change_the_result_and_resume_is_exact():
    whole, _, losses = train_small(0, steps=300, steps_per_call=300)
    split, _, losses_split = train_small(0, steps=300, steps_per_call=70)
    for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(split)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
    # Resume from a state saved at step 100.
    saved = {}

    def on_chunk(step, params, opt_state, _):
        if step == 100:
            saved.update(params=params, opt_state=opt_state)
    train_small(0, steps=100, steps_per_call=100, on_chunk=on_chunk)
    key = jax.random.key(0)
    resumed, _, tail = meta_train(saved["params"], sinusoid.sine_loss,
                                  sinusoid.task_sampler(5, 10, 10), key, meta_steps=300,
                                  inner_lr=0.01, steps_per_call=100,
                                  opt_state=saved["opt_state"], start_step=100)
    assert tail.shape == (200,)
    np.testing.assert_allclose(tail, losses[100:], rtol=1e-5)
    for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)


def test_divergence_is_reported_with_its_step():
    with pytest.raises(TrainingDiverged, match=r"diverged: the loss became (nan|inf) at step \d+") as caught:
        train_small(0, steps=500, steps_per_call=100, inner_lr=5.0, inner_steps=5)
    err = caught.value
    assert 0 <= err.step < 500 and not np.isfinite(err.loss)
    # The steps before it were finite: train exactly up to it and see a finite loss.
    _, _, losses = train_small(0, steps=err.step, steps_per_call=100, inner_lr=5.0,
                               inner_steps=5) if err.step else (None, None, np.zeros(0))
    assert np.isfinite(losses).all()


def test_divergence_names_the_first_non_finite_step_in_a_later_chunk():
    """An objective that is finite for steps 0..6 and NaN from step 7 (SGD with rate 1 on
    −w moves w by exactly 1 per step), run in chunks of 3: the error names step 7."""
    def objective(params, support, query):
        w = params["w"]
        return -w + jnp.where(w > 6.5, jnp.nan, 0.0)

    with pytest.raises(TrainingDiverged) as caught:
        optimize({"w": jnp.float32(0.0)}, objective, lambda key: ((), ()), jax.random.key(0),
                 steps=20, lr=None, optimizer=optax.sgd(1.0), steps_per_call=3)
    assert caught.value.step == 7 and np.isnan(caught.value.loss)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 10, "steps_per_call": 0}, "steps_per_call must be an integer >= 1"),
    ({"steps": 10, "lr": float("inf")}, "lr must be a finite number > 0"),
])
def test_optimize_rejects_bad_arguments(kwargs, message):
    params = sinusoid.init_params(jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        optimize(params, lambda p, s, q: 0.0, sinusoid.task_sampler(2, 2, 2),
                 jax.random.key(0), **kwargs)


def test_finetune_curves_by_hand():
    """Row t, column n: the query metric after n plain SGD steps on task t's support loss,
    the steps written out here; metric_fn measures, loss_fn trains."""
    from minimaml.nets import mlp_apply, mlp_init
    params = mlp_init(jax.random.key(0), (1, 40, 40, 1), weight_std=0.3)
    tasks = sinusoid.sample_tasks(jax.random.key(1), 6, 5, 20)
    inner_lr = 0.05

    def abs_error(p, batch):
        return jnp.mean(jnp.abs(mlp_apply(p, batch[0]) - batch[1]))

    curves = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, inner_lr, 3)
    chunked = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, inner_lr,
                              3, task_chunk=4)
    metric = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, inner_lr,
                             3, metric_fn=abs_error)
    assert curves.shape == metric.shape == (6, 4)
    np.testing.assert_allclose(chunked, curves, rtol=1e-5)

    @jax.jit
    def by_hand(p, sx, sy, qx, qy):
        rows = []
        for _ in range(4):
            error = mlp_apply(p, qx) - qy
            rows.append((jnp.mean(error ** 2), jnp.mean(jnp.abs(error))))
            grad = jax.grad(lambda q: jnp.mean((mlp_apply(q, sx) - sy) ** 2))(p)
            p = jax.tree.map(lambda a, g: a - inner_lr * g, p, grad)
        return jnp.array(rows)

    for t in range(6):
        expected = by_hand(params, tasks.support_x[t], tasks.support_y[t], tasks.query_x[t],
                           tasks.query_y[t])
        np.testing.assert_allclose(curves[t], expected[:, 0], rtol=1e-5)
        np.testing.assert_allclose(metric[t], expected[:, 1], rtol=1e-5)
    assert np.all(np.abs(curves[:, 3] - curves[:, 0]) > 1e-3 * curves[:, 0])   # steps matter
    # no fine-tuning at all: the metric at θ
    np.testing.assert_allclose(finetune_curves(params, sinusoid.sine_loss, tasks.support,
                                               tasks.query, inner_lr, 0), curves[:, :1],
                               rtol=1e-6)


def test_mean_ci95_covers_the_true_mean_95_percent_of_the_time():
    """What a 95% interval promises, checked by simulation: over 20,000 samples of 100
    normal values, the interval holds the true mean in about 95% of them (1.96·std/√n
    with the population std is a normal approximation: ~94.6% at n = 100)."""
    rng = np.random.default_rng(0)
    samples = rng.normal(3.0, 2.0, size=(100, 20_000))
    mean, ci = mean_ci95(samples)                        # along axis 0, one per column
    assert mean.shape == ci.shape == (20_000,)
    covered = np.mean(np.abs(mean - 3.0) <= ci)
    assert 0.94 < covered < 0.956, covered
    # the half-width shrinks like 1/√n: four times the values, half the width
    _, ci_400 = mean_ci95(rng.normal(3.0, 2.0, size=(400, 20_000)))
    assert np.median(ci_400) / np.median(ci) == pytest.approx(0.5, rel=0.02)
    # by hand: values 1, 3, 5, 7 have mean 4 and population std √5
    mean, ci = mean_ci95(np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0], [7.0, 2.0]]))
    np.testing.assert_allclose(mean, [4.0, 2.0])
    np.testing.assert_allclose(ci, [0.98 * 5 ** 0.5, 0.0])
    # along another axis
    mean, _ = mean_ci95(np.array([[1.0, 3.0, 5.0, 7.0]]), axis=1)
    np.testing.assert_allclose(mean, [4.0])
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci95(np.zeros((0, 3)))


def test_meta_train_and_pretrain_compile_once_for_repeated_calls(count_compilations):
    train_small(0, steps=20, steps_per_call=10)                 # compiles the chunk
    params = sinusoid.init_params(jax.random.key(3))
    with count_compilations() as events:
        # A new sampler, new params and a new key, equal settings: the same program.
        train_small(1, steps=30, steps_per_call=10)
    assert events == []
    with count_compilations() as events:                         # another α: a new program
        train_small(1, steps=10, steps_per_call=10, inner_lr=0.02)
    assert events
    pretrain(params, sinusoid.sine_loss, sinusoid.task_sampler(5, 10, 10), jax.random.key(0),
             steps=10, steps_per_call=10)
    with count_compilations() as events:
        pretrain(params, sinusoid.sine_loss, sinusoid.task_sampler(5, 10, 10),
                 jax.random.key(1), steps=20, steps_per_call=10, lr=5e-4)   # β is traced
    assert events == []


def test_finetune_curves_compiles_once_for_repeated_calls(count_compilations):
    tasks = sinusoid.sample_tasks(jax.random.key(1), 6, 5, 20)
    first = sinusoid.init_params(jax.random.key(0))
    second = sinusoid.init_params(jax.random.key(1))
    finetune_curves(first, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 3)
    with count_compilations() as events:
        curves = finetune_curves(second, sinusoid.sine_loss, tasks.support, tasks.query,
                                 0.02, 3)
    assert events == [] and curves.shape == (6, 4)
