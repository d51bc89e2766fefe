"""Run by tests/test_devices.py in a subprocess with N simulated CPU devices
(JAX_NUM_CPU_DEVICES=N): the sharded computations next to the one-device ones. Prints one
JSON object (the largest differences, the shardings seen inside the jitted steps)."""
import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

from minimaml import sinusoid
from minimaml.devices import shard_tasks, task_sharding
from minimaml.evaluate import finetune_curves
from minimaml.omniglot import tasks as omniglot_tasks
from minimaml.omniglot.model import classifier
from minimaml.nets import conv_init
from minimaml.train import MamlObjective, meta_train, optimize


def max_difference(a, b):
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def meta_gradient(params, objective, sampler, key, sharding):
    @jax.jit
    def step(params, key):
        support, query = sampler(key)
        if sharding is not None:
            support, query = shard_tasks((support, query), sharding)
        return jax.value_and_grad(objective)(params, support, query)
    return step(params, key)


def main(devices):
    assert len(jax.devices()) == devices, jax.devices()
    sharding = task_sharding(devices)
    key = jax.random.key(0)
    params = sinusoid.init_params(key)
    objective = MamlObjective(sinusoid.sine_loss, 0.01)
    report = {"devices": len(jax.devices())}

    # The meta-gradient, for a meta-batch that divides and one that does not.
    for meta_batch in (devices * 3, 5):
        sampler = sinusoid.task_sampler(meta_batch, 10, 10)
        one = meta_gradient(params, objective, sampler, key, None)
        many = meta_gradient(params, objective, sampler, key, sharding)
        report[f"gradient_difference_{meta_batch}"] = max_difference(one, many)
        report[f"gradient_scale_{meta_batch}"] = max(float(np.max(np.abs(g)))
                                                     for g in jax.tree.leaves(one[1]))

    # Padding must not leak into the mean: 1/x is infinite on a zero (padding) row.
    def reciprocal(params, support, query):
        return jnp.mean(1.0 / support[0][:, 0, 0]) * params[0]["b"].sum()
    sampler = sinusoid.task_sampler(devices + 1, 1, 1)
    shifted = lambda k: jax.tree.map(lambda x: jnp.abs(x) + 1.0, sampler(k))  # noqa: E731
    one = meta_gradient(params, reciprocal, shifted, key, None)
    many = meta_gradient(params, reciprocal, shifted, key, sharding)
    report["padding_difference"] = max_difference(one, many)
    report["padding_finite"] = bool(all(np.isfinite(x).all() for x in jax.tree.leaves(many)))

    # The task batch inside optimize's jitted step really is split along "tasks".
    seen = []

    def watched(params, support, query):
        jax.debug.inspect_array_sharding(support[0], callback=lambda s: seen.append(str(s)))
        return objective(params, support, query)
    optimize(params, watched, sinusoid.task_sampler(25, 10, 10), key, steps=2,
             devices=devices)
    report["batch_sharding"] = seen

    # A short run: the loss curve and the params (paper meta-batch 25, uneven).
    runs = [meta_train(params, sinusoid.sine_loss, sinusoid.task_sampler(25, 10, 10), key,
                       meta_steps=40, inner_lr=0.01, steps_per_call=15, devices=d)
            for d in (None, devices)]
    report["loss_difference"] = float(np.max(np.abs(runs[0][2] - runs[1][2])))
    report["loss_drop"] = float(runs[0][2][:5].mean() - runs[0][2][-5:].mean())
    report["params_difference"] = max_difference(runs[0][0], runs[1][0])
    report["params_sharding"] = str(jax.tree.leaves(runs[1][0])[0].sharding)

    # Omniglot's conv net (one step, an uneven meta-batch of 6).
    images = jax.random.uniform(jax.random.key(1), (12, 20, 28, 28))
    conv_params = conv_init(jax.random.key(2), 5, filters=8)
    _, loss_fn = classifier()
    omniglot = [meta_train(conv_params, loss_fn, omniglot_tasks.task_sampler(images, 6, 5, 1),
                           key, meta_steps=2, inner_lr=0.4, devices=d) for d in (None, devices)]
    report["omniglot_difference"] = max_difference(omniglot[0][0], omniglot[1][0])

    # The meta-test protocol: 11 tasks, whole and task_chunk at a time.
    params = runs[0][0]
    tasks = sinusoid.sample_tasks(jax.random.key(3), 11, 5, 20)
    for chunk in (None, 2):
        one = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 3,
                              task_chunk=chunk)
        many = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 3,
                               task_chunk=chunk, devices=devices)
        report[f"curves_shape_{chunk}"] = list(many.shape)
        report[f"curves_difference_{chunk}"] = max_difference(one, many)
    print(json.dumps(report))


if __name__ == "__main__":
    main(int(sys.argv[1]))
