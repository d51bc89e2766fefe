"""1 vs 2 devices on this CPU: the meta-batch's task axis split over XLA host devices.

Times ``meta_train(..., devices=n)`` (tasks sampled inside the jitted chunk, as the CLIs
run it) for the sinusoid paper config (meta-batch 25, second order) and Omniglot 5-way
1-shot (meta-batch 32, second order, im2col conv, the Omniglot images), each in its own
process started with two host devices (``JAX_NUM_CPU_DEVICES=2``): one device and two
devices alternate run by run after one compile call each. Each benchmark also runs at a
small meta-batch (2 tasks), so that a line through the two points splits a step's time
into a fixed part (dispatch, synchronisation, the all-reduce) and a part per task; and
once more, one device only, in a process started with a single host device (what a run
without ``--devices`` gets). Writes the section ``devices_speed`` of BENCHMARKS.md.

    python benchmarks/devices_speed.py [--rounds 7] [--data DIR]   # default: $MINIMAML_OMNIGLOT_DIR
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMALL_BATCH = 2


def load_average():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def workloads(part, data_dir, small_batch):
    """[(meta_batch, run(devices, steps))]: a training call of ``steps`` meta-steps."""
    import jax
    if part == "sinusoid":
        from minimaml import sinusoid
        config = sinusoid.Config()
        params = sinusoid.init_params(jax.random.key(0))

        def make(meta_batch):
            sampler = sinusoid.task_sampler(meta_batch, config.support_size, config.query_size)
            return lambda devices, steps: sinusoid_run(params, sampler, config, devices, steps)
        batches = (config.meta_batch, small_batch)
    else:
        from minimaml import omniglot as og
        config = og.paper_config(5, 1)
        train_images, _ = og.split_images(og.load(data_dir, progress=False), config)
        params = og.init_params(config)
        _, loss_fn = og.classifier()

        def make(meta_batch):
            sampler = og.task_sampler(train_images, meta_batch, config.ways, config.shots,
                                      config.queries)
            return lambda devices, steps: omniglot_run(params, loss_fn, sampler, config,
                                                       devices, steps)
        batches = (config.meta_batch, small_batch)
    return [(meta_batch, make(meta_batch)) for meta_batch in batches]


def sinusoid_run(params, sampler, config, devices, steps):
    from minimaml import sinusoid
    from minimaml.train import meta_train
    return meta_train(params, sinusoid.sine_loss, sampler, jax_key(), meta_steps=steps,
                      inner_lr=config.inner_lr, meta_lr=config.meta_lr,
                      steps_per_call=steps, devices=devices)[0]


def omniglot_run(params, loss_fn, sampler, config, devices, steps):
    from minimaml.train import meta_train
    return meta_train(params, loss_fn, sampler, jax_key(), meta_steps=steps,
                      inner_lr=config.inner_lr, inner_steps=config.inner_steps,
                      meta_lr=config.meta_lr, steps_per_call=steps, devices=devices)[0]


def jax_key():
    import jax
    return jax.random.key(0)


def child(part, rounds, steps, data_dir, small_batch):
    """In a process with JAX_NUM_CPU_DEVICES set: {(meta_batch, devices): [ms/iter, ...]}."""
    import jax
    counts = [None] + list(range(2, len(jax.devices()) + 1))
    jobs = workloads(part, data_dir, small_batch)
    compile_s, times, loads = {}, {}, [load_average()]
    for meta_batch, run in jobs:
        for devices in counts:
            start = time.perf_counter()
            jax.block_until_ready(run(devices, steps))
            compile_s[f"{meta_batch},{devices or 1}"] = round(time.perf_counter() - start, 1)
    cpu_times = {}
    for _ in range(rounds):
        for meta_batch, run in jobs:
            for devices in counts:
                start, start_cpu = time.perf_counter(), time.process_time()
                jax.block_until_ready(run(devices, steps))
                ms = (time.perf_counter() - start) / steps * 1000
                cpu_ms = (time.process_time() - start_cpu) / steps * 1000
                cell = f"{meta_batch},{devices or 1}"
                times.setdefault(cell, []).append(round(ms, 3))
                cpu_times.setdefault(cell, []).append(round(cpu_ms, 3))
        loads.append(load_average())
    print(json.dumps({"times": times, "cpu_times": cpu_times, "compile_s": compile_s,
                      "loads": loads, "host_devices": len(jax.devices())}))


def run_child(part, host_devices, args):
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(host_devices))
    command = [sys.executable, __file__, "--child", part, "--rounds", str(args.rounds),
               "--steps", str(args.sinusoid_steps if part == "sinusoid" else args.omniglot_steps),
               "--small-batch", str(args.small_batch)]
    if args.data:
        command += ["--data", args.data]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{part} with {host_devices} host devices failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(part, host_devices, json.dumps(result), flush=True)
    return result


def median(values):
    import numpy as np
    return float(np.median(values))


def cell(values):
    return f"{median(values):.2f} ({min(values):.2f})"


def split(times, big, small, devices):
    """Fixed ms per step and ms per task (per device's share) from two meta-batches."""
    t_big, t_small = median(times[f"{big},{devices}"]), median(times[f"{small},{devices}"])
    per_task = (t_big - t_small) / (big - small)
    return t_small - per_task * small, per_task


def report(results, args, loads, machine):
    from benchmarks.report import write_section
    lines = [
        "## More devices: the task axis over CPU host devices",
        "",
        f"Machine: {machine}.",
        f"Command: `python benchmarks/devices_speed.py --rounds {args.rounds} "
        f"--sinusoid-steps {args.sinusoid_steps} --omniglot-steps {args.omniglot_steps}`; "
        f"load average (1/5/15 min) before: {loads[0]}, after: {loads[1]} — a shared, "
        f"loaded 2-core machine: compare the columns of one row (alternated run by run in "
        f"one process), not rows across sections.",
        "Each cell times `meta_train(..., devices=n)` as the CLIs run it (tasks sampled "
        "inside the jitted chunk; one call of "
        f"{args.sinusoid_steps} sinusoid or {args.omniglot_steps} Omniglot meta-steps), "
        f"median (min) over {args.rounds} alternated calls after one compile call each. "
        "Sinusoid: the paper config (MLP 1-40-40-1, K=10, one step at α=0.01, second "
        "order). Omniglot: 5-way 1-shot, one query per class, one step at α=0.4, second "
        "order, im2col conv, 64 filters. Two host devices are two XLA CPU devices in one "
        "process sharing the machine's two cores. CPU ms: the process's CPU time (all "
        "threads) per meta-iteration; cores busy: CPU time over wall time.",
        "",
        "| benchmark | meta-batch | host devices in the process | devices used | wall ms / "
        "meta-iteration, median (min) | CPU ms / meta-iteration (cores busy) |",
        "|---|---|---|---|---|---|",
    ]
    ratios = []
    for part in ("sinusoid", "omniglot"):
        two, one = results[part]
        for key in sorted({k.split(",")[0] for k in two["times"]}, key=int, reverse=True):
            for result, devices in ((two, 1), (two, 2), (one, 1)):
                wall = result["times"][f"{key},{devices}"]
                cpu = median(result["cpu_times"][f"{key},{devices}"])
                lines.append(f"| {part} | {key} | {result['host_devices']} | {devices} | "
                             f"{cell(wall)} | {cpu:.2f} ({cpu / median(wall):.1f}) |")
            ratio = median(two["times"][f"{key},1"]) / median(two["times"][f"{key},2"])
            verdict = f"{ratio:.2f}× faster" if ratio >= 1 else f"{1 / ratio:.2f}× slower"
            ratios.append(f"{part}, meta-batch {key}: 2 devices {verdict}")
    busy = [median(r["cpu_times"][k]) / median(r["times"][k]) for pair in results.values()
            for r in pair for k in r["times"]]
    lines += ["", "2 devices against 1, same process, alternated: " + "; ".join(ratios) + "."]
    if median(busy) < 0.9:
        lines += ["", f"The machine was oversubscribed: these processes kept a median "
                  f"{median(busy):.1f} of its {os.cpu_count()} cores busy (CPU time over "
                  f"wall time). The wall times above measure the queue for the cores more "
                  f"than the work, and a second device cannot show a gain that needs a "
                  f"free core; the CPU times measure the work, which splitting changes as "
                  f"the next table shows. Re-run on a quiet machine for the wall-time "
                  f"speed-up."]
    lines += ["", "Where the time goes: a line through the two meta-batches splits a "
              "meta-iteration into a fixed part (dispatch, synchronisation, the all-reduce) "
              "and a part per task, in wall time and in CPU time (medians):", "",
              "| benchmark | devices | fixed ms / step, wall | CPU | ms / task, wall | CPU |",
              "|---|---|---|---|---|---|"]
    for part in ("sinusoid", "omniglot"):
        two, _ = results[part]
        big = max(int(k.split(",")[0]) for k in two["times"])
        for devices in (1, 2):
            fixed, per_task = split(two["times"], big, args.small_batch, devices)
            fixed_cpu, per_task_cpu = split(two["cpu_times"], big, args.small_batch, devices)
            lines.append(f"| {part} | {devices} | {fixed:.2f} | {fixed_cpu:.2f} | "
                         f"{per_task:.3f} | {per_task_cpu:.3f} |")
    write_section("devices_speed", "\n".join(lines))
    print("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7, help="timed calls per cell")
    p.add_argument("--sinusoid-steps", type=int, default=1000,
                   help="meta-steps per timed sinusoid call")
    p.add_argument("--omniglot-steps", type=int, default=4,
                   help="meta-steps per timed Omniglot call")
    p.add_argument("--small-batch", type=int, default=SMALL_BATCH,
                   help="the second, small meta-batch")
    p.add_argument("--data", default=None,
                   help="Omniglot data (default: $MINIMAML_OMNIGLOT_DIR, else download)")
    p.add_argument("--child", choices=("sinusoid", "omniglot"), help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    p.add_argument("--save", metavar="FILE", help="also write the raw timings (JSON) to FILE")
    p.add_argument("--report-from", metavar="FILE",
                   help="write the section from a --save FILE instead of measuring")
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.rounds, args.steps, args.data, args.small_batch)
    if args.report_from:
        raw = json.loads(pathlib.Path(args.report_from).read_text())
        args = argparse.Namespace(**{**vars(args), **raw["args"]})
        return report(raw["results"], args, raw["loads"], raw["machine"])
    from benchmarks.report import machine_description
    loads = [load_average()]
    results = {part: (run_child(part, 2, args), run_child(part, 1, args))
               for part in ("sinusoid", "omniglot")}
    loads.append(load_average())
    if args.save:
        kept = ("rounds", "sinusoid_steps", "omniglot_steps", "small_batch")
        pathlib.Path(args.save).write_text(json.dumps(
            {"args": {k: getattr(args, k) for k in kept}, "results": results,
             "loads": loads, "machine": machine_description()}))
    report(results, args, loads, machine_description())


if __name__ == "__main__":
    main()
