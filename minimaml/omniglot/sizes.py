"""What an Omniglot run needs, checked before the work: enough characters in the data
for its split and tasks, and memory for its largest arrays."""
from typing import Any

from ..checks import ArgumentError, check_int
from .data import DRAWINGS, IMAGE_SIZE, Omniglot

EVAL_CHUNK = 50           # meta-test tasks fine-tuned at a time


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
    that cannot fit), with the settings that size them; see :func:`runs.check_memory`."""
    pixels = IMAGE_SIZE * IMAGE_SIZE
    data = 4.0 * 3 * num_characters * DRAWINGS * pixels   # host copy, train + test on device
    side, c_in, activations = IMAGE_SIZE, 1, 0            # floats per image, all blocks
    for _ in range(config.blocks):
        side = -(-side // 2)
        activations += side * side * (9 * c_in + 3 * config.filters)
        c_in = config.filters
    train_images = config.meta_batch * config.ways * (config.shots + config.queries)
    test_images = config.ways * (config.shots + config.eval_queries)
    orders = 2 if config.first_order else 4
    training = (4.0 * train_images * activations * (config.inner_steps + 1) * orders
                + 150.0 * config.meta_steps)               # the loss history, in the record
    meta_test = (4.0 * config.eval_tasks * test_images * pixels * 6   # all tasks, 4 turns
                 + 4.0 * EVAL_CHUNK * test_images * activations * (config.eval_inner_steps + 1)
                 * 2)
    return {"the training": (_MEMORY_OVERHEAD * (data + training),
                             "meta_batch, ways, queries, inner_steps or meta_steps"),
            "the meta-test": (_MEMORY_OVERHEAD * (data + meta_test),
                              "eval_tasks, eval_queries or eval_inner_steps")}


_MEMORY_OVERHEAD = 1.5


