"""The public API is typed: every exported function of every minimaml module annotates its
parameters and its return value (shapes stay in the docstrings)."""
import importlib
import inspect
import pkgutil

import pytest

import minimaml


def public_functions():
    for info in pkgutil.walk_packages(minimaml.__path__, "minimaml."):
        if info.name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (name.startswith("_") or not inspect.isfunction(value)
                    or value.__module__ != module.__name__):
                continue
            yield f"{module.__name__}.{name}", value


def test_the_walk_finds_the_core_and_the_benchmarks():
    names = {name for name, _ in public_functions()}
    for expected in ("minimaml.maml.maml_objective", "minimaml.train.meta_train",
                     "minimaml.omniglot.data.load", "minimaml.sinusoid.tasks.sample_tasks"):
        assert expected in names


@pytest.mark.parametrize("name, function", list(public_functions()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_public_function_is_annotated(name, function):
    signature = inspect.signature(function)
    missing = [p.name for p in signature.parameters.values()
               if p.annotation is inspect.Parameter.empty]
    assert not missing, f"{name}: parameters without a type: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, \
        f"{name}: no return type"
