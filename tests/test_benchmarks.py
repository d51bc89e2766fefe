"""The peer benchmarks, small: the harness runs, losses fall, a missing peer is reported.

Only minimaml's side runs here, so nothing depends on ``.venv-peers`` (CPU torch,
learn2learn, higher), which CI does not build. The PyTorch peers' meta-gradients are
checked against minimaml's in float64 by ``make bench`` (benchmarks/peer_comparison.py
fails when one differs by more than GRAD_RTOL); the same float64 check against a reference
written in the test itself always runs in tests/test_oracles.py. Timings are not checked
against anything: speed is measured by ``make bench`` into BENCHMARKS.md.
"""
import math

import pytest

from benchmarks import peer_comparison, peer_memory

pytestmark = pytest.mark.slow


def _check_summary(summary, impls):
    assert set(summary) == set(impls)
    for impl, s in summary.items():
        # Trained parameters, judged by one evaluator on fixed held-out tasks.
        assert s["held_out_final"] < s["held_out_init"], impl
        assert math.isfinite(s["loss_first"]) and math.isfinite(s["loss_last"]), impl


def test_minimaml_side_runs_and_learns_and_missing_peers_are_skipped(monkeypatch):
    monkeypatch.setattr(peer_comparison, "peers_env_ready", lambda: False)
    summaries, grad_rows, infos, skipped = peer_comparison.run(("sinusoid",), runs=2,
                                                               quick=True)
    _check_summary(summaries["sinusoid"], ("minimaml",))
    assert grad_rows == [] and "jax" in infos["minimaml"]["versions"]
    assert skipped and "learn2learn" in skipped[0][0] and ".venv-peers" in skipped[0][1]
    report = peer_comparison.format_report(summaries, grad_rows, infos, "test", ["0", "0"],
                                           skipped)
    assert "| minimaml |" in report and "1.0×" in report and "Not run: " in report


def test_memory_probe_sees_remat_and_step_count():
    results = peer_memory.measure(steps=(1, 5), with_learn2learn=False)
    plain, remat = results["minimaml"], results["minimaml, remat"]
    assert plain[5]["xla_temp_bytes"] > plain[1]["xla_temp_bytes"]
    assert remat[5]["xla_temp_bytes"] < plain[5]["xla_temp_bytes"]
    report = peer_memory.format_report(results, "test")
    assert "| 5 |" in report
