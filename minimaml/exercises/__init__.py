"""Exercises that check themselves, one module per chapter (core dependencies only).

Each ``check_…`` runs the reader's function on fresh inputs against a reference and
prints ``correct``, ``not yet`` (the stub is untouched) or a hint saying what differs;
``check_….grade(fn)`` returns that verdict without printing.

- :mod:`.one_task`        chapter 1: an SGD step by hand, a fine-tuning curve
- :mod:`.grad_of_grad`    chapter 2: a Hessian-vector product, the Gauss-Newton product,
  the two-step meta-gradient
- :mod:`.maml_sinusoid`   chapter 3: task losses under vmap, a meta-test curve with its
  95% CI, the best single function
- :mod:`.batching`        chapter 4: the inner loop as a scan, a jitted loss that compiles once
- :mod:`.first_order`     chapter 5: the first-order meta-gradient, a gradient angle, Reptile
- :mod:`.omniglot`        chapter 6: the N-way label permutation
- :mod:`.playground`      chapter 7: the largest stable step size, the widget's prediction
- :mod:`.family`          chapter 8: Meta-SGD's step, ANIL's head-only step, iMAML's implicit
  meta-gradient
"""
from .harness import Exercise, Result, tree_difference

CHAPTERS = {1: "one_task", 2: "grad_of_grad", 3: "maml_sinusoid", 4: "batching",
            5: "first_order", 6: "omniglot", 7: "playground", 8: "family"}


def all_exercises() -> dict[str, Exercise]:
    """Every ``check_…`` of every chapter module, by its name (imports them all)."""
    import importlib
    found = {}
    for module_name in CHAPTERS.values():
        module = importlib.import_module(f"{__name__}.{module_name}")
        found.update({name: value for name, value in vars(module).items()
                      if name.startswith("check_") and isinstance(value, Exercise)})
    return found
