"""Run by tests/test_devices.py: a few meta-steps and a meta-test in one process of a
multi-process run (``distributed_run.py OUT COORDINATOR PROCESSES PROCESS_ID``), or the
same global meta-batch in a single process (``distributed_run.py OUT single SHARES``).
Writes the params, losses and curves to OUT (npz)."""
import sys

import jax
import numpy as np

from minimaml import sinusoid
from minimaml.devices import TaskShares, initialize_distributed, process_share
from minimaml.evaluate import finetune_curves
from minimaml.train import meta_train

SHARE = 3          # tasks each process draws per meta-step


def main(out, mode, *numbers):
    share_error = ""
    if mode == "single":
        shares = int(numbers[0])
        sampler = TaskShares(sinusoid.task_sampler(SHARE, 10, 10), shares)
    else:
        initialize_distributed(mode, int(numbers[0]), int(numbers[1]), timeout=60)
        sampler = sinusoid.task_sampler(process_share(SHARE * jax.process_count()), 10, 10)
        try:
            process_share(SHARE * jax.process_count() + 1)
        except ValueError as err:
            share_error = str(err)
    key = jax.random.key(0)
    # Only process 0 asks to stop after 6 steps: every process must stop there.
    params, _, losses = meta_train(sinusoid.init_params(key), sinusoid.sine_loss, sampler, key,
                                   meta_steps=9, inner_lr=0.01, meta_lr=0.01, steps_per_call=3,
                                   on_chunk=lambda step, *_: step >= 6 and jax.process_index() == 0)
    tasks = sinusoid.sample_tasks(jax.random.key(1), 7, 5, 10)
    curves = finetune_curves(params, sinusoid.sine_loss, tasks.support, tasks.query, 0.01, 2)
    np.savez(out, losses=losses, curves=curves, processes=jax.process_count(),
             share_error=share_error,
             devices=len(jax.devices()),
             **{f"param{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(params))})


if __name__ == "__main__":
    main(*sys.argv[1:])
