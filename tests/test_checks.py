"""Argument checks (minimaml/checks.py)."""
import jax
import pytest

from minimaml.checks import check_int, check_positive


@pytest.mark.parametrize("value", [0, -3, 1.5, True, None, "3", float("nan")])
def test_check_int_rejects(value):
    with pytest.raises(ValueError, match=r"^count must be an integer >= 1; got "):
        check_int(value, "count", 1)


@pytest.mark.parametrize("value", [1, 7, 3.0])
def test_check_int_accepts(value):
    check_int(value, "count", 1)


@pytest.mark.parametrize("value", [0, -1e-3, float("nan"), float("inf"), None, "fast"])
def test_check_positive_rejects(value):
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0; got "):
        check_positive(value, "lr")


def test_check_positive_lets_tracers_through():
    assert jax.jit(lambda lr: (check_positive(lr, "lr"), lr * 2)[1])(0.5) == 1.0
