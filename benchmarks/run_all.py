"""``make bench``: build the peers' environment if needed, then run every benchmark.

1. ``benchmarks/peers_setup.py`` creates or refreshes ``.venv-peers`` (CPU torch,
   learn2learn, higher) — a no-op when it is up to date.
2. ``benchmarks/peer_comparison.py``: minimaml vs learn2learn, higher and torch.func,
   sinusoid paper config and 5 inner steps, alternating runs, gradient check.
3. ``benchmarks/peer_memory.py``: peak memory vs inner steps.
4. minimaml's own: ``sinusoid_speed.py``, ``omniglot_speed.py`` (needs the Omniglot
   data: ``$MINIMAML_OMNIGLOT_DIR``), ``devices_speed.py`` (1 vs 2 CPU host devices,
   both benchmarks) and ``widget_latency.py``, each in its own process (``--skip-own``
   leaves them out).

Each writes its own section of BENCHMARKS.md. The whole run takes a few minutes on a
quiet 2-core machine (more when the cores are shared). ``--runs N`` sets the number of
timed runs per implementation; ``--skip-setup`` uses ``.venv-peers`` as it is (or
runs minimaml alone when it is missing).
"""
import argparse
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import peer_comparison, peer_memory, peers_setup  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="timed runs per implementation")
    parser.add_argument("--skip-setup", action="store_true",
                        help="do not create or refresh .venv-peers")
    parser.add_argument("--skip-own", action="store_true",
                        help="skip sinusoid_speed, omniglot_speed, devices_speed and "
                             "widget_latency")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"load average before: {os.getloadavg()}", flush=True)
    failed = False
    if not args.skip_setup:
        try:
            peers_setup.ensure_peers_env()
        except (subprocess.CalledProcessError, OSError) as error:
            failed = True
            print(f"could not build .venv-peers ({error}); benchmarking minimaml alone",
                  file=sys.stderr, flush=True)
    via = "make bench (benchmarks/run_all.py " + " ".join(sys.argv[1:] if argv is None else argv)
    peer_comparison.main(["--runs", str(args.runs)],
                         command=f"{via.strip()}) → peer_comparison.py --runs {args.runs}")
    peer_memory.main([], command=f"{via.strip()}) → peer_memory.py")
    if not args.skip_own:
        for script in ("sinusoid_speed.py", "omniglot_speed.py", "devices_speed.py",
                       "widget_latency.py"):
            print(f"--- {script}", flush=True)
            result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script)],
                                    cwd=ROOT)
            failed = failed or result.returncode != 0
    print(f"make bench took {(time.perf_counter() - start) / 60:.1f} min; "
          f"load average after: {os.getloadavg()}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
