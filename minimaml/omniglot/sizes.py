"""What an Omniglot run needs, checked before the work: enough characters in the data
for its split and tasks, and memory for its largest arrays."""
from typing import Any

from ..checks import ArgumentError, check_int
from .data import DRAWINGS, IMAGE_SIZE, Omniglot

EVAL_CHUNK = 50           # meta-test tasks fine-tuned at a time, at most...
EVAL_CHUNK_IMAGE_STATES = 4000 * 4   # ...and at most this many (support + query images)
                                     # x (fine-tuning steps + 1) in a chunk


def eval_chunk(config: Any) -> int:
    """Meta-test tasks fine-tuned at a time: 50 for 5-way 1-shot with 3 steps, fewer for
    larger tasks (20-way 1-shot: 12) or more steps (5-way 1-shot with 16 steps: 11), so
    the fine-tuning's memory stays near 5-way 1-shot's rather than growing with
    N·(K + Q)·(steps + 1) (fifty 20-way tasks would need ~25 GB on the CPU, fifty 5-way
    tasks fine-tuned 16 steps ~16 GB). Each task is fine-tuned on its own, so the chunk
    changes no result."""
    images = config.ways * (config.shots + config.eval_queries)
    states = config.eval_inner_steps + 1
    return max(1, min(EVAL_CHUNK, EVAL_CHUNK_IMAGE_STATES // (images * states)))


def check_data(config: Any, data: Omniglot) -> None:
    """Raise ArgumentError unless ``data`` has the characters ``config`` needs: more than
    ``train_characters``, and at least ``ways`` on each side of the split."""
    total = len(data.ids)
    check_int(config.train_characters, "train_characters", 1, total - 1)
    test = total - config.train_characters
    if config.ways > min(config.train_characters, test):
        raise ArgumentError(
            "ways", f"at most {min(config.train_characters, test)}: the data's {total} "
            f"characters split into train_characters={config.train_characters} for "
            f"training and {test} for the meta-test, and each task needs that many distinct "
            f"characters",
            config.ways)


def estimate_memory(config: Any, num_characters: int) -> dict[str, tuple[float, str]]:
    """Bytes of the largest arrays of each phase (an estimate, for refusing early a run
    that cannot fit), with the settings that size them; see :func:`runs.check_memory`.

    Calibrated on CPU against the peak resident memory of 5-way runs (4 blocks of 64
    filters): 0.83-1.3x the measured peak for training (meta-batch 32-256, first and
    second order, 1 and 4 inner steps), 1.15-1.25x for the meta-test (600-3,000 tasks,
    3 and 10 steps).
    """
    pixels = IMAGE_SIZE * IMAGE_SIZE
    fixed = _RUNTIME + 4.0 * 3 * num_characters * DRAWINGS * pixels   # data: host, train, test
    side, c_in, activations = IMAGE_SIZE, 1, 0            # floats per image, all blocks
    for _ in range(config.blocks):
        side = -(-side // 2)
        activations += side * side * (9 * c_in + 3 * config.filters)
        c_in = config.filters
    train_images = config.meta_batch * config.ways * (config.shots + config.queries)
    test_images = config.ways * (config.shots + config.eval_queries)
    per_state = _FIRST_ORDER if config.first_order else _SECOND_ORDER
    training = (4.0 * train_images * activations * (config.inner_steps + 1) * per_state
                + 150.0 * config.meta_steps)               # the loss history, in the record
    meta_test = (4.0 * config.eval_tasks * test_images * pixels * 4     # all tasks, turned
                 + 4.0 * eval_chunk(config) * test_images * activations
                 * (config.eval_inner_steps + 1) * _FINE_TUNING)
    return {"the training": (fixed + training,
                             "meta_batch, ways, queries, inner_steps or meta_steps"),
            "the meta-test": (fixed + meta_test,
                              "eval_tasks, eval_queries or eval_inner_steps")}


# Measured (CPU): bytes per float of activations kept per image and inner-loop state.
_SECOND_ORDER, _FIRST_ORDER, _FINE_TUNING = 1.6, 0.5, 0.7
_RUNTIME = 0.8 * 2**30      # compilation and the runtime's own buffers
