"""Shared test helpers."""
import contextlib
import gc

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop every compiled function after each test module. XLA's CPU backend maps memory
    pages for each executable it keeps; one process running the whole suite otherwise
    passes the kernel's limit on memory maps (vm.max_map_count, 65,530 by default) and the
    next compilation crashes with a segmentation fault instead of an error."""
    yield
    jax.clear_caches()
    gc.collect()


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
