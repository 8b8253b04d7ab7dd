"""Benchmark the gradient family and GradCAM against the network's own compiled passes.

For each network, every explanation method is timed against baselines built from the same
network in eval mode:

* ``fwd``      -- the network's compiled forward, ``ms.jit(lambda x: net(x))``;
* ``fwd+bwd``  -- the network's compiled forward+backward, an ``ms.jit`` function calling
                  ``ms.grad`` of the one-hot-weighted target logits w.r.t. the input;
* ``fwd+bwd A/A`` -- a second, separately compiled copy of ``fwd+bwd``, timed like a method: an
                  A/A control whose ratio (ideally 1.000) shows the measurement noise.

Reported per method: the first call on a fresh network object (compile, validation and shape
discovery included), the warm median over interleaved repeats (the order of the functions is
rotated every round, to spread drift and thermal/neighbour noise evenly), and the ratios
method/fwd+bwd and method/fwd. Every timed call ends with ``.asnumpy()``, baselines included, so
all timings include the same device->host synchronisation.

Targets (issue): Gradient, Deconvolution, Guided Backpropagation <= 1.15 x fwd+bwd; GradCAM <= 1.0 x.

Usage:
    python benchmarks/bench_gradients.py                 # full run (a few minutes on 2 cores)
    python benchmarks/bench_gradients.py --quick         # smoke test: small shapes, 2 repeats
    python benchmarks/bench_gradients.py --json out.json # also write all results and raw samples
"""
import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import mindspore as ms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import xaifn  # noqa: E402  pylint: disable=wrong-import-position
from xaifn.models import LeNet5, SmallResNet  # noqa: E402  pylint: disable=wrong-import-position

#: method name -> (target ratio to fwd+bwd)
TARGETS = {"gradient": 1.15, "deconvolution": 1.15, "guided_backprop": 1.15, "gradcam": 1.0}
METHODS = tuple(TARGETS)
#: "fwd+bwd A/A" is a second, separately compiled copy of fwd+bwd: its ratio (ideally 1.000)
#: shows how much of a method's deviation from 1 is measurement noise.
BASELINES = ("fwd", "fwd+bwd", "fwd+bwd A/A")
MIN_ROUNDS = 3  # warm rounds run even when the time budget is spent
NUM_CLASSES = 10


def case_configs(quick):
    """The benchmarked cases: name, factory, input shape (N, C, H, W), GradCAM layer, warm rounds
    and a time budget (s) for the warm rounds (at least MIN_ROUNDS run even past it)."""
    if quick:
        return [
            dict(name="LeNet5", factory=LeNet5, shape=(8, 3, 32, 32), layer="conv2", repeats=2,
                 budget_s=30),
            dict(name="SmallResNet", factory=SmallResNet, shape=(2, 3, 32, 32), layer="stages.2",
                 repeats=2, budget_s=30),
        ]
    return [
        dict(name="LeNet5", factory=LeNet5, shape=(32, 3, 32, 32), layer="conv2", repeats=40,
             budget_s=60),
        dict(name="SmallResNet", factory=SmallResNet, shape=(8, 3, 64, 64), layer="stages.2",
             repeats=10, budget_s=160),
    ]


def fresh_network(factory, seed=0):
    """A new network object with reproducible weights."""
    ms.set_seed(seed)
    np.random.seed(seed)
    return factory(num_class=NUM_CLASSES)


def make_baselines(net):
    """The network's own compiled forward, and forward+backward of the summed target logits."""
    net.set_train(False)

    @ms.jit
    def forward(inputs):
        return net(inputs)

    def score(inputs, onehot):
        return (net(inputs) * onehot).sum()

    @ms.jit
    def forward_backward(inputs, onehot):
        return ms.grad(score, grad_position=0)(inputs, onehot)

    return forward, forward_backward


def make_method(name, net, layer):
    """fn(inputs, targets): one explanation method on `net`, as a user would call it."""
    if name == "gradcam":
        return lambda x, t: xaifn.gradcam(net, x, t, layer=layer)
    return lambda x, t, fn=getattr(xaifn, name): fn(net, x, t)


def timed(fn, *args):
    """Wall-clock seconds of one synchronised call (result pulled to the host)."""
    start = time.perf_counter()
    fn(*args).asnumpy()
    return time.perf_counter() - start


def timed_both(fn, *args):
    """(wall, process CPU) seconds of one synchronised call.

    The CPU time of the whole process (all MindSpore threads) is less sensitive than the wall
    clock to other processes competing for the cores, though not immune (caches, spinning).
    """
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args).asnumpy()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_case(cfg, log):
    """First-call and warm timings of the baselines and every method on one network/shape."""
    rng = np.random.default_rng(0)
    shape = cfg["shape"]
    inputs = ms.Tensor(rng.standard_normal(shape).astype(np.float32))
    labels = rng.integers(0, NUM_CLASSES, shape[0]).astype(np.int32)
    targets = ms.Tensor(labels)  # what a user passes to the methods (validated per call)
    onehot = ms.Tensor(np.eye(NUM_CLASSES, dtype=np.float32)[labels])  # baseline: no validation

    calls, first = {}, {}
    # Baselines: one fresh network, compiled once; the first call includes the compile.
    baseline_net = fresh_network(cfg["factory"])
    forward, forward_backward = make_baselines(baseline_net)
    calls["fwd"] = (forward, (inputs,))
    calls["fwd+bwd"] = (forward_backward, (inputs, onehot))
    calls["fwd+bwd A/A"] = (make_baselines(baseline_net)[1], (inputs, onehot))
    for name in BASELINES:
        fn, args = calls[name]
        first[name] = timed(fn, *args)
        log(f"  first call {name:16s} {first[name] * 1e3:9.1f} ms")
    # Methods: each on its own fresh network object, so that its first call pays for validation,
    # shape discovery, view building and compilation, as a user's first call would.
    for name in METHODS:
        fn = make_method(name, fresh_network(cfg["factory"]), cfg["layer"])
        calls[name] = (fn, (inputs, targets))
        first[name] = timed(fn, inputs, targets)
        log(f"  first call {name:16s} {first[name] * 1e3:9.1f} ms")

    # Sanity: the Gradient map is max_c |d/dx| of the baseline's gradient (same weights/seed).
    reference = np.abs(forward_backward(inputs, onehot).asnumpy()).max(axis=1, keepdims=True)
    sanity = float(np.abs(calls["gradient"][0](inputs, targets).asnumpy() - reference).max())
    log(f"  sanity: max |gradient - max_c|fwd+bwd|| = {sanity:.3g}")

    # Warm: every round calls each function once; the order rotates every round.
    names = list(BASELINES) + list(METHODS)
    samples = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for name in names:  # one more warm-up call each (allocators, caches), untimed
        fn, args = calls[name]
        fn(*args).asnumpy()
    gc.collect()
    start = time.perf_counter()
    rounds = 0
    while rounds < cfg["repeats"]:
        k = rounds % len(names)
        for name in names[k:] + names[:k]:
            fn, args = calls[name]
            wall, used = timed_both(fn, *args)
            samples[name].append(wall)
            cpu[name].append(used)
        rounds += 1
        if time.perf_counter() - start > cfg["budget_s"] and rounds >= MIN_ROUNDS:
            log(f"  time budget of {cfg['budget_s']:.0f} s spent: stopping after {rounds} rounds "
                "(machine busy?)")
            break
    log(f"  {rounds} warm rounds in {time.perf_counter() - start:.1f} s")

    median = {name: statistics.median(s) for name, s in samples.items()}
    cpu_median = {name: statistics.median(s) for name, s in cpu.items()}
    base = np.array(samples["fwd+bwd"])
    rows = []
    for name in names:
        s = np.array(samples[name])
        row = dict(method=name, first_s=first[name], median_s=median[name],
                   q25_s=float(np.percentile(s, 25)), q75_s=float(np.percentile(s, 75)),
                   min_s=float(s.min()), samples_s=[float(v) for v in s],
                   cpu_median_s=cpu_median[name], cpu_samples_s=[float(v) for v in cpu[name]],
                   ratio_fwd_bwd=median[name] / median["fwd+bwd"],
                   ratio_fwd=median[name] / median["fwd"],
                   # per-round paired ratio: robust to slow drift of the machine's speed
                   paired_ratio_fwd_bwd=float(np.median(s / base)),
                   min_ratio_fwd_bwd=float(s.min() / base.min()),
                   cpu_ratio_fwd_bwd=cpu_median[name] / cpu_median["fwd+bwd"])
        if name in TARGETS:
            row["target"] = TARGETS[name]
            row["meets_target"] = row["ratio_fwd_bwd"] <= TARGETS[name]
        rows.append(row)
    return dict(network=cfg["name"], input_shape=list(shape), gradcam_layer=cfg["layer"],
                repeats=rounds, sanity_max_abs_diff=sanity, rows=rows)


def markdown(results):
    """The results as one Markdown table."""
    lines = ["| network | input | method | first call (ms) | warm median (ms) | IQR (ms) | min (ms) "
             "| × fwd+bwd | paired | min/min | CPU-time | × fwd | target | ok |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for case in results:
        shape = "x".join(str(d) for d in case["input_shape"])
        for row in case["rows"]:
            target = f"≤ {row['target']:.2f}" if "target" in row else ""
            ok = ("yes" if row["meets_target"] else "**no**") if "target" in row else ""
            lines.append(
                f"| {case['network']} | {shape} | {row['method']} | {row['first_s'] * 1e3:.0f} "
                f"| {row['median_s'] * 1e3:.1f} | {row['q25_s'] * 1e3:.1f}–{row['q75_s'] * 1e3:.1f} "
                f"| {row['min_s'] * 1e3:.1f} | {row['ratio_fwd_bwd']:.3f} "
                f"| {row['paired_ratio_fwd_bwd']:.3f} | {row['min_ratio_fwd_bwd']:.3f} "
                f"| {row['cpu_ratio_fwd_bwd']:.3f} | {row['ratio_fwd']:.2f} | {target} | {ok} |")
    return "\n".join(lines)


LEGEND = ("first call: fresh network object, includes validation, shape discovery and compilation. "
          "Ratios are to the network's compiled fwd+bwd: × fwd+bwd = ratio of warm wall-clock "
          "medians (the one judged against the target); paired = median of per-round ratios; "
          "min/min = ratio of fastest calls; CPU-time = ratio of median process CPU time. "
          "× fwd = ratio of warm medians to the compiled forward alone. fwd+bwd A/A: a second "
          "compiled copy of fwd+bwd, timed like a method; its distance from 1.000 is the noise.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: small batches/shapes and 2 repeats (about a minute)")
    parser.add_argument("--json", metavar="PATH", help="write the results (with raw samples) here")
    parser.add_argument("--repeats", type=int, default=None,
                        help="override the number of warm rounds for every network")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="override the time budget (s) of the warm rounds of every network")
    parser.add_argument("--only", choices=("LeNet5", "SmallResNet"), default=None,
                        help="benchmark one network only")
    args = parser.parse_args(argv)

    def log(message):
        print(message, flush=True)

    configs = case_configs(args.quick)
    if args.only:
        configs = [c for c in configs if c["name"] == args.only]
    if args.repeats is not None:
        for cfg in configs:
            cfg["repeats"] = args.repeats
    if args.budget_s is not None:
        for cfg in configs:
            cfg["budget_s"] = args.budget_s

    env = dict(python=platform.python_version(), mindspore=ms.__version__, numpy=np.__version__,
               xaifn=xaifn.__version__, cpus=os.cpu_count(), platform=platform.platform(),
               mode="GRAPH" if ms.get_context("mode") == ms.GRAPH_MODE else "PYNATIVE (+ms.jit)",
               load_before=list(os.getloadavg()))
    log(f"mindspore {env['mindspore']}, numpy {env['numpy']}, {env['cpus']} CPUs, "
        f"mode {env['mode']}, load average {env['load_before'][0]:.2f}")
    start = time.perf_counter()
    results = []
    for cfg in configs:
        log(f"{cfg['name']} on {cfg['shape']} (GradCAM layer {cfg['layer']!r}), "
            f"{cfg['repeats']} warm rounds")
        results.append(run_case(cfg, log))
    env["load_after"] = list(os.getloadavg())
    env["total_s"] = time.perf_counter() - start

    table = markdown(results)
    print()
    print(table)
    print()
    print(LEGEND)
    print(f"Total {env['total_s']:.0f} s; load average before/after "
          f"{env['load_before'][0]:.2f}/{env['load_after'][0]:.2f}.")
    busiest = max(env["load_before"][0], env["load_after"][0])
    if busiest > 1.5 * (env["cpus"] or 1):
        print(f"WARNING: load average {busiest:.1f} on {env['cpus']} CPUs: other processes competed "
              "for the cores, so wall-clock ratios are noisy (see the fwd+bwd A/A row); repeat when idle.")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(dict(environment=env, quick=args.quick, results=results, table=table),
                      handle, indent=1)
        print(f"results written to {args.json}")
    missed = [f"{c['network']}/{r['method']}" for c in results for r in c["rows"]
              if r.get("meets_target") is False]
    if missed:
        print("missed targets: " + ", ".join(missed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
