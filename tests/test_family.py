"""MAML's relatives (minimaml/family, the inner loop's knobs in minimaml/maml.py)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from minimaml import family, maml
from minimaml.family import InnerLoopObjective, LearnedRates, ReptileObjective
from minimaml.losses import cross_entropy_loss, mse_loss
from minimaml.nets import mlp_apply, mlp_init
from minimaml.sinusoid import sample_tasks, sine_loss, task_sampler
from minimaml.train import MamlObjective, optimize, optimize_schedule


def tanh_apply(params, x):
    """A smooth MLP: its Hessian is rich everywhere (ReLU's is zero almost everywhere)."""
    *hidden, last = params
    for layer in hidden:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ last["w"] + last["b"]


LOSS = mse_loss(tanh_apply)
HEAD = [False, False, True]   # ANIL's mask for a three-layer list


def problem(seed=0, sizes=(1, 6, 6, 1), tasks=3, k=5, q=6, weight_std=0.5):
    """float64 params and a batch of sinusoid tasks (call inside jax.enable_x64)."""
    k_init, k_tasks = jax.random.split(jax.random.key(seed))
    params = jax.tree.map(lambda a: a.astype(jnp.float64),
                          mlp_init(k_init, sizes, weight_std=weight_std))
    batch = jax.tree.map(lambda a: a.astype(jnp.float64), sample_tasks(k_tasks, tasks, k, q))
    return params, batch


def tree_dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def random_like(key, tree):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([jax.random.normal(k, jnp.shape(x), jnp.float64)
                              for k, x in zip(keys, leaves)])


def assert_matches_finite_differences(objective, trained, directions=4, eps=1e-6, rtol=1e-5):
    """⟨∇f, d⟩ against (f(x + εd) − f(x − εd)) / 2ε for random directions d."""
    objective = jax.jit(objective)
    grads = jax.grad(objective)(trained)
    for i in range(directions):
        d = random_like(jax.random.key(100 + i), trained)
        plus = jax.tree.map(lambda p, v: p + eps * v, trained, d)
        minus = jax.tree.map(lambda p, v: p - eps * v, trained, d)
        numeric = float((objective(plus) - objective(minus)) / (2 * eps))
        analytic = float(tree_dot(grads, d))
        assert abs(analytic - numeric) <= rtol * max(abs(numeric), 1e-3), (i, analytic, numeric)
    return grads


def assert_trees_close(a, b, rtol=1e-10, atol=1e-12):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def per_tensor(params, value, steps=None):
    shape = () if steps is None else (steps,)
    return jax.tree.map(lambda p: jnp.full(shape, value, p.dtype), params)


# ---------------------------------------------------------------------------
# Meta-gradients against central finite differences (float64)

def test_anil_meta_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        params, tasks = problem(1)
        objective = MamlObjective(LOSS, 0.3, 2, adapt=(False, False, False, False, True, True))
        grads = assert_matches_finite_differences(
            lambda p: objective(p, tasks.support, tasks.query), params)
        # The body is frozen in the inner loop but still meta-trained.
        assert float(jnp.abs(grads[0]["w"]).max()) > 1e-4


def test_per_tensor_and_per_entry_rates_meta_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        params, tasks = problem(2)
        rates = [{"w": 0.2, "b": 0.1}, {"w": jnp.full((6, 6), 0.05), "b": 0.3}, 0.25]
        objective = InnerLoopObjective(LOSS, 2, inner_lr=jax.tree.map(jnp.asarray, rates))
        assert_matches_finite_differences(lambda p: objective(p, tasks.support, tasks.query),
                                          params)


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_metasgd_meta_gradient_in_theta_and_alpha_matches_finite_differences(inner_steps):
    with jax.enable_x64(True):
        params, tasks = problem(3)
        the_plan = family.metasgd(params, LOSS, meta_steps=1, inner_lr=0.2,
                                  inner_steps=inner_steps)
        objective = the_plan.schedule[0][1]
        grads = assert_matches_finite_differences(
            lambda t: objective(t, tasks.support, tasks.query), the_plan.init)
        assert float(jnp.abs(ravel_pytree(grads.inner_lr)[0]).max()) > 1e-4


def test_mamlpp_second_order_meta_gradient_matches_finite_differences():
    """LSLR (per-tensor, per-step learned rates) with the multi-step loss."""
    with jax.enable_x64(True):
        params, tasks = problem(4)
        the_plan = family.mamlpp(params, LOSS, meta_steps=10, inner_lr=0.2, inner_steps=3,
                                 first_order_steps=0, msl_steps=10, msl_phases=2)
        until, objective = the_plan.schedule[0]
        assert not objective.first_order and objective.query_weights.shape == (3,)
        rates = jax.tree.map(lambda r: r * jnp.array([1.0, 0.7, 1.3]), the_plan.init.inner_lr)
        assert_matches_finite_differences(
            lambda t: objective(t, tasks.support, tasks.query),
            LearnedRates(the_plan.init.params, rates))


def test_multi_step_loss_is_the_weighted_sum_of_the_query_loss_after_each_step():
    with jax.enable_x64(True):
        params, tasks = problem(5, tasks=1)
        support = jax.tree.map(lambda a: a[0], tasks.support)
        query = jax.tree.map(lambda a: a[0], tasks.query)
        weights = jnp.array([0.2, 0.3, 0.5])
        _, traj = maml.inner_loop(params, LOSS, support, 0.1, 3, trajectory=True)
        by_hand = sum(w * LOSS(jax.tree.map(lambda t: t[n + 1], traj.params), query)
                      for n, w in enumerate(weights))
        ours = maml.task_loss(params, LOSS, support, query, 0.1, 3, query_weights=weights)
        np.testing.assert_allclose(ours, by_hand, rtol=1e-12)


def test_reptile_gradient_is_the_mean_of_theta_minus_the_adapted_weights():
    with jax.enable_x64(True):
        params, tasks = problem(6)
        objective = ReptileObjective(LOSS, 0.1, 4)
        grads = jax.grad(objective)(params, tasks.support, tasks.query)
        expected = []
        for i in range(3):
            data = tuple(jnp.concatenate([s[i], q[i]]) for s, q in zip(tasks.support, tasks.query))
            phi = params
            for _ in range(4):
                phi = jax.tree.map(lambda p, g: p - 0.1 * g, phi, jax.grad(LOSS)(phi, data))
            expected.append(jax.tree.map(lambda p, f: p - f, params, phi))
        assert_trees_close(grads, jax.tree.map(lambda *g: sum(g) / 3, *expected))


def test_reptile_with_one_step_is_alpha_times_the_joint_training_gradient():
    """Nichol et al. 2018, Section 5: with k = 1 Reptile is joint training (scaled by α)."""
    with jax.enable_x64(True):
        params, tasks = problem(7)
        grads = jax.grad(ReptileObjective(LOSS, 0.1, 1))(params, tasks.support, tasks.query)
        data = tuple(jnp.concatenate([s, q], axis=1) for s, q in zip(tasks.support, tasks.query))
        joint = jax.grad(lambda p: jnp.mean(jax.vmap(LOSS, (None, 0))(p, data)))(params)
        assert_trees_close(grads, jax.tree.map(lambda g: 0.1 * g, joint))


# ---------------------------------------------------------------------------
# iMAML

def _imaml_problem(inner_steps=400):
    params, tasks = problem(8, sizes=(1, 4, 1), tasks=1, weight_std=0.8)
    support = jax.tree.map(lambda a: a[0], tasks.support)
    query = jax.tree.map(lambda a: a[0], tasks.query)
    return params, support, query, dict(inner_lr=0.05, inner_steps=inner_steps, reg=2.0)


def test_imaml_gradient_equals_the_exact_implicit_gradient_with_a_dense_hessian():
    with jax.enable_x64(True):
        params, support, query, kw = _imaml_problem(inner_steps=30)
        flat, unravel = ravel_pytree(params)
        ours = jax.jit(jax.grad(lambda p: LOSS(family.implicit_adapt(
            p, LOSS, support, cg_steps=50, cg_tol=1e-12, **kw), query)))(params)
        phi = family.implicit_adapt(params, LOSS, support, **kw)
        phi_flat, _ = ravel_pytree(phi)
        hessian = jax.hessian(lambda f: LOSS(unravel(f), support))(phi_flat)
        g_query = ravel_pytree(jax.grad(LOSS)(phi, query))[0]
        exact = np.linalg.solve(np.eye(flat.size) + hessian / kw["reg"], g_query)
        np.testing.assert_allclose(ravel_pytree(ours)[0], exact, rtol=1e-8, atol=1e-12)
        # Not the gradient through the unrolled inner loop (which this test would miss).
        unrolled = ravel_pytree(jax.jit(jax.grad(
            lambda p: LOSS(_unrolled(p, support, **kw), query)))(params))[0]
        assert np.abs(unrolled - exact).max() > 1e-6


def _unrolled(params, support, inner_lr, inner_steps, reg):
    def step(phi, _):
        g = jax.grad(LOSS)(phi, support)
        return jax.tree.map(lambda f, gg, p: f - inner_lr * (gg + reg * (f - p)), phi, g,
                            params), None
    return jax.lax.scan(step, params, length=inner_steps)[0]


def test_imaml_gradient_matches_finite_differences_when_the_inner_problem_is_solved():
    """With φ* converged, the implicit gradient is d L_query(φ*(θ)) / dθ itself."""
    with jax.enable_x64(True):
        params, support, query, kw = _imaml_problem(inner_steps=3000)
        objective = lambda p: LOSS(family.implicit_adapt(p, LOSS, support, cg_steps=50,  # noqa
                                                         cg_tol=1e-12, **kw), query)
        assert_matches_finite_differences(objective, params, directions=3, eps=1e-5, rtol=1e-6)


def test_imaml_tends_to_maml_as_the_regulariser_grows():
    """One inner step of size 1/λ from θ is MAML's step; the implicit and MAML gradients
    then differ by O(1/λ²), while first-order MAML is O(1/λ) away."""
    with jax.enable_x64(True):
        params, tasks = problem(9)
        gaps = []
        for reg in (100.0, 1000.0):
            imaml = family.ImamlObjective(LOSS, 1 / reg, 1, reg, cg_steps=50, cg_tol=1e-12)
            g_i = ravel_pytree(jax.jit(jax.grad(imaml))(params, tasks.support, tasks.query))[0]
            g_m = ravel_pytree(jax.jit(jax.grad(maml.maml_objective), static_argnums=1)(
                params, LOSS, tasks.support, tasks.query, 1 / reg))[0]
            np.testing.assert_allclose(
                imaml(params, tasks.support, tasks.query),
                maml.maml_objective(params, LOSS, tasks.support, tasks.query, 1 / reg),
                rtol=1e-12)
            gaps.append(float(jnp.linalg.norm(g_i - g_m) / jnp.linalg.norm(g_m)))
        assert gaps[1] < gaps[0] / 30, gaps
        g_fo = ravel_pytree(jax.grad(maml.maml_objective)(params, LOSS, tasks.support,
                                                          tasks.query, 1e-3, first_order=True))[0]
        assert gaps[1] < 0.1 * float(jnp.linalg.norm(g_fo - g_m) / jnp.linalg.norm(g_m))


def test_imaml_trains_a_classifier_with_integer_labels():
    apply_fn = lambda p, x: mlp_apply(p, x)
    loss = cross_entropy_loss(apply_fn)
    params = mlp_init(jax.random.key(0), (2, 8, 3), weight_std=0.3)
    x = jax.random.normal(jax.random.key(1), (4, 6, 2))
    y = jnp.tile(jnp.arange(3), (4, 2))
    objective = family.ImamlObjective(loss, 0.1, 3, 1.0)
    grads = jax.jit(jax.grad(objective))(params, (x, y), (x, y))
    assert np.all(np.isfinite(ravel_pytree(grads)[0]))


# ---------------------------------------------------------------------------
# Neutral knobs give MAML

def _maml_value_and_grad(params, tasks, inner_lr, steps):
    return jax.value_and_grad(maml.maml_objective)(params, LOSS, tasks.support, tasks.query,
                                                   inner_lr, steps)


@pytest.mark.parametrize("steps", [1, 3])
def test_metasgd_with_equal_rates_is_maml(steps):
    with jax.enable_x64(True):
        params, tasks = problem(10)
        the_plan = family.metasgd(params, LOSS, meta_steps=1, inner_lr=0.2, inner_steps=steps)
        value, grads = jax.value_and_grad(the_plan.schedule[0][1])(the_plan.init, tasks.support,
                                                                  tasks.query)
        maml_value, maml_grads = _maml_value_and_grad(params, tasks, 0.2, steps)
        np.testing.assert_allclose(value, maml_value, rtol=1e-12)
        assert_trees_close(grads.params, maml_grads)


def test_lslr_with_equal_rates_and_last_step_weight_is_maml():
    with jax.enable_x64(True):
        params, tasks = problem(11)
        objective = InnerLoopObjective(LOSS, 3, query_weights=jnp.array([0.0, 0.0, 1.0]),
                                       lr_per_step=True)
        trained = LearnedRates(params, per_tensor(params, 0.2, steps=3))
        value, grads = jax.value_and_grad(objective)(trained, tasks.support, tasks.query)
        maml_value, maml_grads = _maml_value_and_grad(params, tasks, 0.2, 3)
        np.testing.assert_allclose(value, maml_value, rtol=1e-12)
        assert_trees_close(grads.params, maml_grads)


def test_mamlpp_with_one_step_and_no_annealing_is_maml_with_learned_rates():
    with jax.enable_x64(True):
        params, _ = problem(12)
        the_plan = family.mamlpp(params, LOSS, meta_steps=20, inner_lr=0.2, inner_steps=1,
                                 first_order_steps=0, msl_steps=0)
        assert len(the_plan.schedule) == 1
        (until, objective), = the_plan.schedule
        assert until == 20 and not objective.first_order
        np.testing.assert_array_equal(objective.query_weights, [1.0])


def test_anil_adapting_everything_is_maml_bitwise():
    params = mlp_init(jax.random.key(0))
    the_plan = family.anil(params, sine_loss, meta_steps=5, inner_lr=0.01,
                           head=[True, True, True])
    assert the_plan.schedule[0][1] == MamlObjective(sine_loss, 0.01, 1)
    assert family.maml(params, sine_loss, meta_steps=5, inner_lr=0.01).schedule[0][1] == \
        MamlObjective(sine_loss, 0.01, 1)
    assert family.fomaml(params, sine_loss, meta_steps=5, inner_lr=0.01).schedule[0][1] == \
        MamlObjective(sine_loss, 0.01, 1, first_order=True)
    tasks = sample_tasks(jax.random.key(1), 4, 10, 10)
    all_true = jax.tree.map(lambda _: True, params)
    for a, b in zip(jax.tree.leaves(maml.inner_loop(params, sine_loss, tasks.support, 0.01, 2,
                                                    adapt=all_true)),
                    jax.tree.leaves(maml.inner_loop(params, sine_loss, tasks.support, 0.01, 2))):
        np.testing.assert_array_equal(a, b)


def test_traced_scalar_rate_gives_maml_to_rounding():
    params = mlp_init(jax.random.key(0))
    tasks = sample_tasks(jax.random.key(1), 4, 10, 10)
    general = InnerLoopObjective(sine_loss, 1, inner_lr=jnp.float32(0.01))
    np.testing.assert_allclose(general(params, tasks.support, tasks.query),
                               MamlObjective(sine_loss, 0.01)(params, tasks.support, tasks.query),
                               rtol=1e-6)


# ---------------------------------------------------------------------------
# ANIL never differentiates the frozen body in its inner loop

def _guarded_body_apply(log):
    """tanh MLP whose body (all but the last layer) records when its backward pass runs."""
    @jax.custom_vjp
    def body(hidden, x):
        for layer in hidden:
            x = jnp.tanh(x @ layer["w"] + layer["b"])
        return x

    def fwd(hidden, x):
        return body(hidden, x), (hidden, x)

    def bwd(residuals, g):
        log.append("body differentiated")
        _, vjp = jax.vjp(body.__wrapped__ if hasattr(body, "__wrapped__") else None, *residuals)
        return vjp(g)

    body.defvjp(fwd, bwd)

    def apply(params, x):
        *hidden, last = params
        return body(hidden, x) @ last["w"] + last["b"]
    return apply


def test_anil_inner_loop_never_differentiates_the_body():
    log = []
    loss = mse_loss(_guarded_body_apply(log))
    params = mlp_init(jax.random.key(0), (1, 8, 8, 1), weight_std=0.3)
    support = (jnp.ones((5, 1)), jnp.ones((5, 1)))
    jax.jit(lambda p: maml.inner_loop(p, loss, support, 0.1, 3, adapt=HEAD)).lower(params)
    assert log == []                    # the body's backward was never even traced
    jax.jit(lambda p: maml.inner_loop(p, loss, support, 0.1, 3)).lower(params)
    assert log                          # ... and the guard does fire for plain MAML


def test_anil_inner_gradient_tree_holds_only_the_head():
    params = mlp_init(jax.random.key(0))
    support = (jnp.ones((5, 1)), jnp.ones((5, 1)))
    jaxpr = jax.make_jaxpr(lambda p: maml.inner_loop(p, sine_loss, support, 0.1, 2,
                                                     adapt=HEAD))(params)
    maml_jaxpr = jax.make_jaxpr(lambda p: maml.inner_loop(p, sine_loss, support, 0.1, 2))(params)
    (scan,) = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    (maml_scan,) = [e for e in maml_jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
    # The scan carries the head's two tensors only; MAML's carries all six.
    assert scan.params["num_carry"] == 2 and maml_scan.params["num_carry"] == 6
    adapted = maml.inner_loop(params, sine_loss, support, 0.1, 2, adapt=HEAD)
    for frozen, same in zip(jax.tree.leaves(params[:2]), jax.tree.leaves(adapted[:2])):
        np.testing.assert_array_equal(frozen, same)
    assert not np.array_equal(params[2]["w"], adapted[2]["w"])


def test_mask_as_predicate_equals_mask_as_pytree():
    params = mlp_init(jax.random.key(0))
    support = (jnp.linspace(-1, 1, 5)[:, None], jnp.ones((5, 1)))
    by_tree = maml.inner_loop(params, sine_loss, support, 0.1, 2,
                              adapt=[{"w": False, "b": True}] * 3)
    by_path = maml.inner_loop(params, sine_loss, support, 0.1, 2,
                              adapt=lambda path, leaf: path[-1].key == "b")
    for a, b in zip(jax.tree.leaves(by_tree), jax.tree.leaves(by_path)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(by_tree[1]["w"], params[1]["w"])


def test_masked_trajectory_keeps_frozen_params_at_theta():
    params = mlp_init(jax.random.key(0))
    support = (jnp.linspace(-1, 1, 5)[:, None], jnp.ones((5, 1)))
    adapted, traj = maml.inner_loop(params, sine_loss, support, 0.1, 3, trajectory=True,
                                    adapt=HEAD)
    assert traj.params[0]["w"].shape == (4, 1, 40) and traj.losses.shape == (4,)
    np.testing.assert_array_equal(traj.params[0]["w"][3], params[0]["w"])
    np.testing.assert_array_equal(traj.params[2]["w"][3], adapted[2]["w"])


# ---------------------------------------------------------------------------
# Rates per step, schedules, training

def test_per_step_rates_are_used_in_order():
    params = mlp_init(jax.random.key(0))
    support = (jnp.linspace(-1, 1, 5)[:, None], jnp.ones((5, 1)))
    rates = jnp.array([0.3, 0.0001, 0.05])
    ours = maml.inner_loop(params, sine_loss, support, rates, 3, lr_per_step=True)
    manual = params
    for rate in rates:
        manual, _ = maml.sgd_step(manual, sine_loss, support, float(rate))
    assert_trees_close(ours, manual, rtol=1e-6, atol=1e-7)


def test_learned_rates_are_extended_with_the_last_step_for_longer_finetuning():
    learned = family.Learned([{"w": jnp.zeros(2)}], [{"w": jnp.array([0.1, 0.2])}],
                             lr_per_step=True)
    np.testing.assert_allclose(learned.rates(4)[0]["w"], [0.1, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(learned.rates(1)[0]["w"], [0.1])


def test_a_schedule_of_one_objective_is_the_plain_run_bitwise():
    params = mlp_init(jax.random.key(0))
    sampler = task_sampler(5, 10, 10)
    objective = MamlObjective(sine_loss, 0.01)
    plain, _, plain_losses = optimize(params, objective, sampler, jax.random.key(1), steps=30,
                                      steps_per_call=6)
    split, _, split_losses = optimize_schedule(params, [(12, objective), (30, objective)],
                                               sampler, jax.random.key(1), steps_per_call=6)
    np.testing.assert_array_equal(plain_losses, split_losses)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(split)):
        np.testing.assert_array_equal(a, b)


def test_a_schedule_may_switch_after_one_step():
    """Phases as short as one step: (1, a), (3, b) is a's first step, then b's two."""
    params = mlp_init(jax.random.key(0))
    sampler = task_sampler(3, 5, 5)
    first, second = MamlObjective(sine_loss, 0.01), MamlObjective(sine_loss, 0.02)
    after_one, state, one_loss = optimize(params, first, sampler, jax.random.key(1), steps=1)
    expected, _, more = optimize(after_one, second, sampler, jax.random.key(1), steps=3,
                                 opt_state=state, start_step=1)
    switched, _, losses = optimize_schedule(params, [(1, first), (3, second)], sampler,
                                            jax.random.key(1), steps_per_call=1)
    np.testing.assert_array_equal(losses, np.concatenate([one_loss, more]))
    for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(switched)):
        np.testing.assert_array_equal(a, b)


def test_mamlpp_compiles_two_programs_for_many_phases(count_compilations):
    """Five phases (annealed weights, then second order): one program per derivative order,
    the weights being traced — when the phases' chunks have one length (here 4 steps)."""
    params = mlp_init(jax.random.key(0))
    the_plan = family.plan("mamlpp", params, sine_loss, meta_steps=24, inner_lr=0.01,
                           inner_steps=2, first_order_steps=8, msl_steps=16, msl_phases=4)
    assert [until for until, _ in the_plan.schedule] == [4, 8, 12, 16, 24]
    with count_compilations() as events:
        trained, _, losses = optimize_schedule(the_plan.init, the_plan.schedule,
                                               task_sampler(3, 5, 5), jax.random.key(1),
                                               steps_per_call=4)
    assert len([e for e in events if e.endswith("backend_compile_duration")]) == 2, events
    assert len(losses) == 24
    learned = the_plan.learned(trained)
    assert learned.lr_per_step and learned.inner_lr[0]["w"].shape == (2,)
    assert not np.allclose(learned.inner_lr[0]["w"], 0.01)     # the rates were learned


def test_mamlpp_weights_reach_the_last_step_at_msl_steps():
    """The staircase: phase k of msl_phases starts at msl_steps·k/msl_phases with the
    weights of progress k/msl_phases, so the final weights start at msl_steps itself
    (not at the next edge, e.g. where second order begins)."""
    params = mlp_init(jax.random.key(0))
    the_plan = family.plan("mamlpp", params, sine_loss, meta_steps=100, inner_lr=0.01,
                           inner_steps=3, first_order_steps=60, msl_steps=20, msl_phases=4)
    assert [until for until, _ in the_plan.schedule] == [5, 10, 15, 20, 60, 100]
    starts = [0] + [until for until, _ in the_plan.schedule[:-1]]
    for start, (until, objective) in zip(starts, the_plan.schedule):
        expected = family.multi_step_weights(3, min(1.0, start / 20))
        np.testing.assert_array_equal(np.asarray(objective.query_weights), expected)
        assert objective.first_order == (start < 60)
    final = family.multi_step_weights(3, 1.0)
    assert final[-1] > 0.95 and np.isclose(final.sum(), 1.0)


def test_mamlpp_default_phases_are_a_tenth_for_msl_and_a_third_first_order():
    """The documented defaults: the weights anneal over the first 10% of meta-steps in 10
    stairs, and the first third runs first order."""
    params = mlp_init(jax.random.key(0))
    the_plan = family.plan("mamlpp", params, sine_loss, meta_steps=300, inner_lr=0.01,
                           inner_steps=2)
    assert [until for until, _ in the_plan.schedule] == [*range(3, 31, 3), 100, 300]
    assert [objective.first_order for _, objective in the_plan.schedule] == [True] * 11 + [False]
    np.testing.assert_array_equal(np.asarray(the_plan.schedule[-2][1].query_weights),
                                  family.multi_step_weights(2, 1.0))


def test_imaml_objective_defaults_are_the_recipe_defaults():
    """ImamlObjective built by hand solves the inner problem as family.imaml does."""
    import inspect
    recipe = inspect.signature(family.imaml).parameters
    by_hand = family.ImamlObjective(sine_loss, 0.01)
    for name in ("inner_steps", "reg", "cg_steps"):
        assert getattr(by_hand, name) == recipe[name].default, name
    planned = family.plan("imaml", PARAMS, sine_loss, meta_steps=5, inner_lr=0.01)
    assert planned.schedule[0][1] == by_hand


def test_a_learner_trajectory_of_zero_steps_is_theta():
    learned = family.Learned(PARAMS, 0.01)
    trajectory = learned.trajectory(sine_loss, SUPPORT, 0)
    assert trajectory.losses.shape == (1,)
    for start, theta in zip(jax.tree.leaves(trajectory.params), jax.tree.leaves(PARAMS)):
        np.testing.assert_array_equal(start[0], theta)


@pytest.mark.parametrize("text, expected", [
    ("reg=2", ("reg", 2)), ("reg=0.5", ("reg", 0.5)), ("reg=1e-3", ("reg", 1e-3)),
    ("head=last", ("head", "last")), ("name=a=b", ("name", "a=b"))])
def test_parse_option(text, expected):
    name, value = family.parse_option(text)
    assert (name, value) == expected and type(value) is type(expected[1])


@pytest.mark.parametrize("text", ["reg", "=2", ""])
def test_parse_option_refuses_text_without_name_and_value(text):
    with pytest.raises(ValueError, match=r"expected NAME=VALUE, got"):
        family.parse_option(text)


@pytest.mark.parametrize("options, message", [
    ({"msl_steps": -1}, r"msl_steps must be an integer >= 0"),
    ({"msl_phases": 0}, r"msl_phases must be an integer >= 1"),
    ({"first_order_steps": -2}, r"first_order_steps must be an integer >= 0"),
    ({"inner_steps": 0}, r"inner_steps must be an integer >= 1")])
def test_check_recipe_refuses_bad_numbers_before_any_work(options, message):
    """What a command line's config checks when it is made, before the plan is built."""
    from minimaml.family.algorithms import check_recipe
    with pytest.raises(ValueError, match=message):
        check_recipe("mamlpp", options)


def test_schedule_stops_when_on_chunk_says_so():
    params = mlp_init(jax.random.key(0))
    objective = MamlObjective(sine_loss, 0.01)
    seen = []
    _, _, losses = optimize_schedule(params, [(10, objective), (20, objective)],
                                     task_sampler(3, 5, 5), jax.random.key(1), steps_per_call=5,
                                     on_chunk=lambda step, *_: seen.append(step) or step >= 5)
    assert seen == [5] and len(losses) == 5


OPTIONS = {"mamlpp": dict(inner_steps=2, first_order_steps=100, msl_steps=100, msl_phases=1),
           "imaml": dict(inner_steps=10, reg=5.0)}


@pytest.mark.parametrize("algorithm", family.ALGORITHMS)
def test_every_algorithm_meta_trains_and_its_learner_finetunes(algorithm):
    """200 meta-steps from the same θ: the query loss after one fine-tuning step falls."""
    params = mlp_init(jax.random.key(0))
    sampler = task_sampler(5, 10, 10)
    learned, _, losses = family.meta_train(algorithm, params, sine_loss, sampler,
                                           jax.random.key(1), meta_steps=200, inner_lr=0.01,
                                           meta_lr=3e-3, steps_per_call=100,
                                           options=OPTIONS.get(algorithm))
    assert losses.shape == (200,) and np.all(np.isfinite(losses))
    tasks = sample_tasks(jax.random.key(2), 100, 10, 20)
    curves = learned.finetune_curves(sine_loss, tasks.support, tasks.query, 3)
    assert curves.shape == (100, 4) and np.all(np.isfinite(curves))
    before = family.Learned(params, 0.01).finetune_curves(sine_loss, tasks.support,
                                                          tasks.query, 3)
    assert curves[:, 1].mean() < 0.9 * before[:, 1].mean()


def _mamlpp_run(meta_steps, **options):
    return family.meta_train("mamlpp", mlp_init(jax.random.key(0)), sine_loss,
                             task_sampler(5, 10, 10), jax.random.key(1), meta_steps=meta_steps,
                             inner_lr=0.01, steps_per_call=10,
                             options=dict(inner_steps=2, msl_phases=1, **options))


def test_rate_meta_lr_equal_to_meta_lr_is_the_default_run_bitwise():
    default, _, losses = _mamlpp_run(20)
    same, _, same_losses = _mamlpp_run(20, rate_meta_lr=1e-3)
    np.testing.assert_array_equal(losses, same_losses)
    for a, b in zip(jax.tree.leaves((default.params, default.inner_lr)),
                    jax.tree.leaves((same.params, same.inner_lr))):
        np.testing.assert_array_equal(a, b)


def test_rate_meta_lr_sets_the_size_of_adams_first_step_on_the_rates():
    """Adam's first step moves each entry by lr · g/(|g| + ε) ≈ lr: θ by the meta
    learning rate, the learned rates by rate_meta_lr."""
    start = mlp_init(jax.random.key(0))
    learned, _, _ = _mamlpp_run(1, rate_meta_lr=1e-5)
    theta_step = np.concatenate([np.abs(np.ravel(a - b)) for a, b in
                                 zip(jax.tree.leaves(learned.params), jax.tree.leaves(start))])
    rate_step = np.concatenate([np.abs(np.ravel(r - 0.01))
                                for r in jax.tree.leaves(learned.inner_lr)])
    np.testing.assert_allclose(theta_step.max(), 1e-3, rtol=1e-3)
    np.testing.assert_allclose(rate_step.max(), 1e-5, rtol=1e-2)


# ---------------------------------------------------------------------------
# Bad input: one ValueError naming the argument

PARAMS = mlp_init(jax.random.key(0))
SUPPORT = (jnp.zeros((5, 1)), jnp.zeros((5, 1)))


@pytest.mark.parametrize("inner_lr, kwargs, message", [
    ([0.1, 0.1], {}, r"inner_lr must be a number or a pytree with the structure of params"),
    ([{"w": 0.1}] * 3, {}, r"inner_lr must be a number or a pytree with the structure"),
    ([{"w": jnp.ones(3), "b": 0.1}] * 3, {}, r"inner_lr\[0\]\['w'\] must have shape \(\)"),
    (jnp.ones(2), {}, r"inner_lr must be a number or a pytree of rates matching params"),
    (jnp.ones(2), {"lr_per_step": True}, r"leading axis of length inner_steps=3"),
    ([0.1, 0.1, jnp.ones(2)], {"lr_per_step": True}, r"inner_lr.* leading axis of length "
                                                     r"inner_steps=3"),
    (0.01, {"lr_per_step": True}, r"inner_lr .*leading axis of length inner_steps=3"),
    ([0.1, -0.1, 0.1], {}, r"inner_lr must be finite and > 0 everywhere"),
    ([0.1, float("nan"), 0.1], {}, r"inner_lr must be finite and > 0 everywhere"),
    (jnp.array([0.1, float("inf"), 0.1]), {"lr_per_step": True},
     r"inner_lr must be finite and > 0 everywhere"),
    (-0.01, {}, r"inner_lr must be a finite number > 0"),
])
def test_bad_inner_lr(inner_lr, kwargs, message):
    with pytest.raises(ValueError, match=message):
        maml.inner_loop(PARAMS, sine_loss, SUPPORT, inner_lr, 3, **kwargs)


@pytest.mark.parametrize("adapt, message", [
    ([False, False, False], r"adapt freezes every parameter"),
    (lambda path, leaf: False, r"adapt freezes every parameter"),
    ([True, False], r"adapt must be a pytree of bools with the structure of params"),
    ([1, 0, 1], r"adapt must give a bool for every parameter"),
])
def test_bad_adapt(adapt, message):
    with pytest.raises(ValueError, match=message):
        maml.inner_loop(PARAMS, sine_loss, SUPPORT, 0.01, 2, adapt=adapt)


@pytest.mark.parametrize("weights, message", [
    (jnp.ones(3), r"query_weights must have shape \(inner_steps,\) = \(2,\)"),
    (jnp.array([0.5, -0.5]), r"query_weights must be finite, >= 0 and not all zero"),
    (jnp.zeros(2), r"query_weights must be finite, >= 0 and not all zero"),
])
def test_bad_query_weights(weights, message):
    tasks = sample_tasks(jax.random.key(0), 2, 5, 5)
    with pytest.raises(ValueError, match=message):
        maml.maml_objective(PARAMS, sine_loss, tasks.support, tasks.query, 0.01, 2,
                            query_weights=weights)


def test_unknown_algorithm():
    with pytest.raises(ValueError, match=r"algorithm must be one of maml, fomaml, metasgd, "
                                         r"anil, mamlpp, reptile, imaml; got 'mamlx'"):
        family.meta_train("mamlx", PARAMS, sine_loss, task_sampler(2, 5, 5), jax.random.key(0),
                          meta_steps=1, inner_lr=0.01)


@pytest.mark.parametrize("algorithm, options, message", [
    ("anil", {"head": [False, False, False]}, r"adapt freezes every parameter"),
    ("anil", {"head": None}, None),
    ("imaml", {"reg": 0.0}, r"reg must be a finite number > 0"),
    ("imaml", {"cg_steps": 0}, r"cg_steps must be an integer >= 1"),
    ("mamlpp", {"first_order_steps": -1}, r"first_order_steps must be an integer >= 0"),
    ("mamlpp", {"rate_meta_lr": -1e-4}, r"rate_meta_lr must be a finite number > 0"),
    ("metasgd", {"rate_meta_lr": float("nan")}, r"rate_meta_lr must be a finite number > 0"),
    ("metasgd", {"heads": 1}, r"metasgd has no option 'heads'; it takes inner_steps, "
                              r"first_order"),
])
def test_bad_recipe_options(algorithm, options, message):
    if message is None:
        family.plan(algorithm, PARAMS, sine_loss, meta_steps=5, inner_lr=0.01, **options)
        with pytest.raises(ValueError, match=r"head: the default \(the last layer\) needs"):
            family.plan(algorithm, {"w": jnp.ones(2)}, sine_loss, meta_steps=5, inner_lr=0.01)
        return
    with pytest.raises((ValueError, TypeError), match=message):
        family.plan(algorithm, PARAMS, sine_loss, meta_steps=5, inner_lr=0.01, **options)


def test_bad_schedule():
    objective = MamlObjective(sine_loss, 0.01)
    with pytest.raises(ValueError, match=r"schedule must be a non-empty sequence"):
        optimize_schedule(PARAMS, [(10, objective), (10, objective)], task_sampler(2, 5, 5),
                          jax.random.key(0))
