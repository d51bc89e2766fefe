"""Shared test helpers."""
import contextlib

import jax
import pytest


@contextlib.contextmanager
def _count_compilations():
    """Count every JAX compilation (jax.monitoring events) inside the block."""
    events = []

    def listener(event, duration, **kwargs):
        if event.startswith("/jax/core/compile"):
            events.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def count_compilations():
    """``with count_compilations() as events: ...`` — the compilations inside the block."""
    return _count_compilations
