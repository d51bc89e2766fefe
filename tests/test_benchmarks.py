"""The peer benchmarks, small: the harness runs, losses fall, meta-gradients agree.

minimaml's side always runs. The PyTorch peers (learn2learn, higher, torch.func) run
when ``.venv-peers`` exists (``make bench`` or ``python benchmarks/peers_setup.py``
builds it) and are skipped with the reason otherwise. Timings here are not checked
against anything: speed is measured by ``make bench`` into BENCHMARKS.md.
"""
import math

import pytest

from benchmarks import peer_comparison, peer_memory
from benchmarks.peers_setup import peers_env_ready

pytestmark = pytest.mark.slow

needs_peers = pytest.mark.skipif(
    not peers_env_ready(),
    reason=".venv-peers (CPU torch, learn2learn, higher) is not built; "
           "`python benchmarks/peers_setup.py` builds it")


def _check_summary(summary, impls):
    assert set(summary) == set(impls)
    for impl, s in summary.items():
        assert 0 < s["min"] <= s["median"] <= s["max"] < math.inf, impl
        # Trained parameters, judged by one evaluator on fixed held-out tasks.
        assert s["held_out_final"] < s["held_out_init"], impl
        assert math.isfinite(s["loss_first"]) and math.isfinite(s["loss_last"]), impl
    assert summary["minimaml"]["ratio"] == 1.0


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


@needs_peers
def test_peers_learn_and_their_meta_gradients_match_minimaml():
    # Five inner steps: the stricter of the two sinusoid workloads (make bench runs both).
    summaries, grad_rows, infos, skipped = peer_comparison.run(("sinusoid-5",), runs=1,
                                                               quick=True)
    assert skipped == []
    _check_summary(summaries["sinusoid-5"], peer_comparison.IMPLS)
    # 3 peers x 2 parameter points, all within float64 tolerance, and the tolerance is
    # far below the gap a first-order shortcut would leave.
    assert len(grad_rows) == 6
    for row in grad_rows:
        assert row["rel_err"] <= peer_comparison.GRAD_RTOL, row
        assert row["first_order_gap"] > 1e3 * peer_comparison.GRAD_RTOL, row
    assert infos["learn2learn"]["versions"]["learn2learn"] == "0.2.0"


def test_memory_probe_sees_remat_and_step_count():
    results = peer_memory.measure(steps=(1, 5), with_learn2learn=peers_env_ready())
    plain, remat = results["minimaml"], results["minimaml, remat"]
    assert plain[5]["xla_temp_bytes"] > plain[1]["xla_temp_bytes"]
    assert remat[5]["xla_temp_bytes"] < plain[5]["xla_temp_bytes"]
    for config in results.values():
        assert all(r["rss_peak_bytes"] >= 0 for r in config.values())
    if "learn2learn" in results:
        assert results["learn2learn"][5]["rss_peak_bytes"] > results["learn2learn"][1]["rss_peak_bytes"]
    report = peer_memory.format_report(results, "test")
    assert "| 5 |" in report
