"""Benchmark xaifn.metrics against the network's own compiled cost over the same work.

The perturbation metrics (deletion, insertion, naive faithfulness, ROAD) cost one forward pass per
perturbed image; their floor is the network's compiled eval-mode forward over the same number of
images, in batches of the same chunk size, timed in the same run (rounds interleaved). The metrics
that re-explain (max-sensitivity, class sensitivity, model randomisation) are timed against the
explainer calls they make, done directly. Pointing game and IoSR run no network: their time per
image is reported. ROAD also reports its host-side imputation time (sparse solves, SciPy).

Target (issue): each metric <= 1.1 x its baseline.

Usage:
    python benchmarks/bench_metrics.py              # full run (a few minutes on 2 cores)
    python benchmarks/bench_metrics.py --quick      # smoke test
    python benchmarks/bench_metrics.py --json out.json
"""
import argparse
import functools
import json
import os
import time

import numpy as np
import mindspore as ms
from mindspore import nn

import xaifn
from xaifn import metrics
from xaifn.metrics.faithfulness import steps
from xaifn.models import LeNet5, SmallResNet


def seconds(fn):
    """(wall-clock, process CPU) seconds of one call, synchronised."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    for value in out if isinstance(out, tuple) else (out,):
        if isinstance(value, ms.Tensor):
            value.asnumpy()
    return time.perf_counter() - start, time.process_time() - cpu


def interleaved(runs, rounds):
    """{name: median wall seconds} and {name: median CPU seconds} over `rounds` rounds of every run
    (order rotated each round), after one warm-up call each (compilation). The CPU time of this
    process (all its threads) is less disturbed by other processes on a shared machine."""
    names = list(runs)
    for name in names:
        seconds(runs[name])
    samples = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(seconds(runs[name]))
    wall = {name: float(np.median([w for w, _ in values])) for name, values in samples.items()}
    cpu = {name: float(np.median([c for _, c in values])) for name, values in samples.items()}
    return wall, cpu


def forward_run(net, sample_shape, num_images, chunk):
    """The compiled eval-mode forward of `num_images` images in ceil(num_images / chunk) equal
    batches (at most `chunk` each, the last one not shorter: as the metrics split their work)."""
    forward = ms.jit(xaifn.network_view(net))
    calls = -(-num_images // chunk)
    size = -(-num_images // calls)
    batch = ms.Tensor(np.random.default_rng(1).random((size,) + sample_shape), ms.float32)

    def run():
        out = None
        for _ in range(calls):
            out = forward(batch)
        return out
    return run


def perturbation_rows(quick, chunk, rounds):
    """Deletion, insertion, naive faithfulness and ROAD against the forward over the same images."""
    rows = []
    softmax = nn.Softmax()
    fractions = (0.1, 0.3, 0.5, 0.7, 0.9)
    imputation = None
    networks = [("LeNet5", LeNet5, 4 if quick else 16, (3, 32, 32), True)]
    if not quick:
        networks.append(("SmallResNet", SmallResNet, 4, (3, 64, 64), False))
    for label, factory, n, shape, with_road in networks:
        net = factory()
        x = ms.Tensor(np.random.default_rng(0).random((n,) + shape), ms.float32)
        t = ms.Tensor(np.arange(n) % 10, ms.int32)
        maps = xaifn.gradient(net, x, t)
        count, _ = steps(*shape[1:])
        cases = {
            "deletion_auc": (count + 1, lambda: metrics.deletion_auc(net, softmax, x, t, maps, chunk=chunk)),
            "insertion_auc": (count + 1, lambda: metrics.insertion_auc(net, softmax, x, t, maps, chunk=chunk)),
            "naive_faithfulness": (count, lambda: metrics.naive_faithfulness(net, softmax, x, t, maps,
                                                                             chunk=chunk)),
        }
        if with_road:
            image, removed = x.asnumpy()[0], np.random.default_rng(2).random(shape[1:]) < 0.5
            start = time.perf_counter()
            for _ in range(20):
                metrics.linear_imputation(image, removed)
            imputation = (time.perf_counter() - start) / 20
            print(f"ROAD imputation on the host: {imputation * 1e3:.1f} ms per (sample, fraction) at 32 x 32")
            cases["road (morf)"] = (len(fractions), lambda: metrics.road(net, softmax, x, t, maps,
                                                                         fractions=fractions, chunk=chunk))
        for name, (per_sample, run) in cases.items():
            timing, cpu = interleaved({"metric": run, "forward": forward_run(net, shape, n * per_sample, chunk)},
                                      rounds)
            rows.append(dict(metric=name, net=label, n=n, images=n * per_sample, metric_s=timing["metric"],
                             baseline_s=timing["forward"], ratio=timing["metric"] / timing["forward"],
                             cpu_ratio=cpu["metric"] / cpu["forward"], baseline="forward"))
            print_row(rows[-1])
        if with_road:
            host = imputation * n * len(fractions)
            rows.append(dict(metric="road without the host imputation", net=label, n=n, baseline="forward",
                             metric_s=rows[-1]["metric_s"] - host, baseline_s=rows[-1]["baseline_s"],
                             ratio=(rows[-1]["metric_s"] - host) / rows[-1]["baseline_s"], imputation_s=host,
                             cpu_ratio=float("nan")))
            print_row(rows[-1])
    return rows


def explainer_rows(quick, rounds):
    """Metrics that call an explainer, against the same explainer calls made directly."""
    rows = []
    n = 4 if quick else 16
    net = LeNet5()
    x = ms.Tensor(np.random.default_rng(3).random((n, 3, 32, 32)), ms.float32)
    t = ms.Tensor(np.arange(n) % 10, ms.int32)
    explain = functools.partial(xaifn.gradient, net)
    noise = np.random.default_rng(4).uniform(-0.2, 0.2, (10, 3, 32, 32)).astype(np.float32)

    def direct_sensitivity():            # the explanations of x and of the 10 perturbed copies
        out = explain(x, t)
        for delta in noise:
            out = explain(x + ms.Tensor(delta), t)
        return out
    logits_net = ms.jit(xaifn.network_view(net))

    def direct_class():
        logits = logits_net(x).asnumpy()
        explain(x, ms.Tensor(logits.argmax(1).astype(np.int32)))
        return explain(x, ms.Tensor(logits.argmin(1).astype(np.int32)))
    layers = 5

    def direct_randomization():
        out = None
        for _ in range(layers + 1):
            out = explain(x, t)
        return out
    cases = {
        "max_sensitivity (K=10)": (lambda: metrics.max_sensitivity(explain, x, t, noise), direct_sensitivity,
                                   "11 x gradient"),
        "class_sensitivity": (lambda: metrics.class_sensitivity(explain, net, x), direct_class,
                              "forward + 2 x gradient"),
        "model_randomization": (lambda: metrics.model_randomization(
            lambda m: functools.partial(xaifn.gradient, m), net, x, t).spearman, direct_randomization,
            "6 x gradient"),
    }
    for name, (run, direct, what) in cases.items():
        timing, cpu = interleaved({"metric": run, "direct": direct}, rounds)
        rows.append(dict(metric=name, net="LeNet5", n=n, metric_s=timing["metric"], baseline_s=timing["direct"],
                         ratio=timing["metric"] / timing["direct"], cpu_ratio=cpu["metric"] / cpu["direct"],
                         baseline=what))
        print_row(rows[-1])
    return rows


def localization_rows(quick):
    rows = []
    n = 64 if quick else 1024
    rng = np.random.default_rng(5)
    maps, masks = rng.random((n, 1, 32, 32)), rng.random((n, 1, 32, 32)) < 0.2
    for name, fn in (("pointing_game", metrics.pointing_game), ("iosr", metrics.iosr)):
        fn(maps[:2], masks[:2])
        took = seconds(lambda: fn(maps, masks))[0]
        rows.append(dict(metric=name, n=n, seconds_per_image=took / n))
        print(f"| {name} | {n} images | {took / n * 1e6:.1f} us per image |")
    return rows


def print_row(row):
    print(f"| {row['metric']} | {row['net']} | {row['n']} | {row['baseline']} | {row['metric_s']:.3f} | "
          f"{row['baseline_s']:.3f} | {row['ratio']:.3f} | {row['cpu_ratio']:.3f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chunk", type=int, default=256, help="perturbed images per step")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 9)
    print("| metric | net | N | baseline | metric s | baseline s | ratio | CPU-time ratio |\n"
          "|---|---|---|---|---|---|---|---|")
    rows = perturbation_rows(args.quick, args.chunk, rounds) + explainer_rows(args.quick, rounds)
    rows += localization_rows(args.quick)
    print(f"load average: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(dict(chunk=args.chunk, rounds=rounds, rows=rows, load=os.getloadavg()), handle, indent=2)


if __name__ == "__main__":
    main()
