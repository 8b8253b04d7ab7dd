"""Benchmark xaifn.metrics against the network's own compiled cost over the same work.

The perturbation metrics (deletion, insertion, naive faithfulness, ROAD) cost one forward pass per
perturbed image; their floor is the network's compiled eval-mode forward over the same number of
images, in batches of the same chunk size, timed in the same run (rounds interleaved). The metrics
that re-explain (max-sensitivity, class sensitivity, model randomisation) are timed against the
explainer calls they make, done directly. Pointing game and IoSR run no network: their time per
image is reported. Two metrics define host work of their own beyond the network, and are also
reported against the network's cost plus that work timed alone: ROAD's imputation (the sparse
solves of the same (sample, fraction) systems) and model randomisation's similarity measures
(Spearman and SSIM of the same maps).

Two workloads:

* realistic, where the target is judged: mindcv's resnet18 (10 classes, random weights) at
  112 x 112, N = 2, with few steps so that a call takes a fraction of a second to seconds; model
  randomisation also at N = 8 (its redraws are a per-call cost, whatever N);
* small: LeNet5 at 32 x 32, N = 16, whose whole forward over the perturbed images takes ~20-100 ms,
  so that what it shows is the metrics' fixed per-call host cost (argument checks, ranking, masks),
  reported in ms (metric minus baseline) beside the ratio.

Target (issue): each metric <= 1.1 x its baseline.

Usage:
    python benchmarks/bench_metrics.py              # full run (a few minutes on 2 cores)
    python benchmarks/bench_metrics.py --quick      # smoke test
    python benchmarks/bench_metrics.py --json out.json
"""
import argparse
import functools
import importlib
import json
import os
import time

import numpy as np
import mindspore as ms
from mindspore import nn

import xaifn
from xaifn import _checks, metrics
from xaifn.metrics._common import pixel_ranks
from xaifn.metrics.faithfulness import steps
from xaifn.models import LeNet5


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


def resnet18(num_classes=10):
    """mindcv's resnet18 with random weights (nothing downloaded), in eval mode."""
    import mindcv   # pylint: disable=import-outside-toplevel
    net = mindcv.create_model("resnet18", num_classes=num_classes, pretrained=False)
    net.set_train(False)
    return net


def workloads(quick):
    """(label, network factory, N, sample shape, deletion/insertion steps, K noise draws, layers
    randomised (None: all), a larger N for model randomisation (None: none))."""
    small = ("LeNet5 32x32", LeNet5, 4 if quick else 16, (3, 32, 32), None, 10, None, None)
    if quick:
        return [small]
    return [("resnet18 112x112", resnet18, 2, (3, 112, 112), 8, 4, 3, 8), small]


def road_systems(maps, fractions):
    """The removed-pixel masks (N, S, H, W) ROAD (MoRF) builds for `maps`."""
    ranks = pixel_ranks(_checks.check_saliency(maps))
    area = ranks.shape[1] * ranks.shape[2]
    counts = np.clip(np.round(np.asarray(fractions) * area).astype(np.int64), 1, area - 1)
    return ranks[:, None] < counts[None, :, None, None]


def perturbation_rows(label, net, x, t, maps, num_steps, chunk, rounds):
    """Deletion, insertion, naive faithfulness and ROAD against the forward over the same images."""
    rows = []
    softmax = nn.Softmax()
    fractions = (0.1, 0.3, 0.5, 0.7, 0.9)
    n, shape = x.shape[0], tuple(x.shape[1:])
    count, _ = steps(*shape[1:], num_steps=num_steps)
    cases = {
        "deletion_auc": (count + 1, lambda: metrics.deletion_auc(net, softmax, x, t, maps, num_steps=num_steps,
                                                                 chunk=chunk)),
        "insertion_auc": (count + 1, lambda: metrics.insertion_auc(net, softmax, x, t, maps, num_steps=num_steps,
                                                                   chunk=chunk)),
        "naive_faithfulness": (count, lambda: metrics.naive_faithfulness(net, softmax, x, t, maps,
                                                                         num_steps=num_steps, chunk=chunk)),
        "road (morf, 5 fractions)": (len(fractions), lambda: metrics.road(net, softmax, x, t, maps,
                                                                          fractions=fractions, chunk=chunk)),
    }
    images, removed = x.asnumpy(), road_systems(maps, fractions)

    def imputation():   # the same systems, solved as ROAD solves them (one batch: one call's block)
        return metrics.linear_imputation(np.broadcast_to(images[:, None], removed.shape[:2] + images.shape[1:]),
                                         removed)
    for name, (per_sample, run) in cases.items():
        runs = {"metric": run, "forward": forward_run(net, shape, n * per_sample, chunk)}
        if name.startswith("road"):
            runs["imputation"] = imputation
        timing, cpu = interleaved(runs, rounds)
        what = f"forward ({n * per_sample} images)"
        rows.append(row(name, label, n, what, timing, cpu, "forward"))
        print_row(rows[-1])
        if name.startswith("road"):   # its floor: the forward and the imputation its definition requires
            rows.append(row(name, label, n, f"{what} + imputation alone", *with_sum(timing, cpu, "forward", "imputation")))
            print_row(rows[-1])
            print(f"ROAD host imputation ({label}): {timing['imputation'] * 1e3:.1f} ms for "
                  f"{removed.shape[0] * removed.shape[1]} (sample, fraction) systems", flush=True)
    return rows


def row(name, label, n, what, timing, cpu, baseline):
    return dict(metric=name, net=label, n=n, baseline=what, metric_s=timing["metric"],
                baseline_s=timing[baseline], ratio=timing["metric"] / timing[baseline],
                overhead_ms=(timing["metric"] - timing[baseline]) * 1e3, cpu_ratio=cpu["metric"] / cpu[baseline])


def with_sum(timing, cpu, first, second):
    """(timing, cpu, name): both medians with the sum of the medians of runs `first` and `second`
    added, under `name` (a floor made of two parts timed alone)."""
    name = f"{first} + {second}"
    return ({**timing, name: timing[first] + timing[second]}, {**cpu, name: cpu[first] + cpu[second]}, name)


def explainer_rows(label, net, x, t, num_noise, layers, rounds):
    """Metrics that call an explainer, against the same explainer calls made directly."""
    rows = []
    n, shape = x.shape[0], tuple(x.shape[1:])
    explain = functools.partial(xaifn.gradient, net)
    noise = np.random.default_rng(4).uniform(-0.2, 0.2, (num_noise,) + shape).astype(np.float32)

    def direct_sensitivity():            # the explanations of x and of the K perturbed copies
        out = explain(x, t)
        for delta in noise:
            out = explain(x + ms.Tensor(delta), t)
        return out
    logits_net = ms.jit(xaifn.network_view(net))

    def direct_class():
        logits = logits_net(x).asnumpy()
        explain(x, ms.Tensor(logits.argmax(1).astype(np.int32)))
        return explain(x, ms.Tensor(logits.argmin(1).astype(np.int32)))
    cases = {
        f"max_sensitivity (K={num_noise})": (lambda: metrics.max_sensitivity(explain, x, t, noise),
                                             direct_sensitivity, f"{num_noise + 1} x gradient"),
        "class_sensitivity": (lambda: metrics.class_sensitivity(explain, net, x), direct_class,
                              "forward + 2 x gradient"),
    }
    for name, (run, direct, what) in cases.items():
        timing, cpu = interleaved({"metric": run, "direct": direct}, rounds)
        rows.append(row(name, label, n, what, timing, cpu, "direct"))
        print_row(rows[-1])
    return rows + randomization_rows(label, net, x, t, layers, rounds)


def randomization_rows(label, net, x, t, layers, rounds):
    """Model randomisation of the top `layers` (None: all) against the L + 1 gradient calls it
    makes, made directly; and against those plus its similarity measures (Spearman, SSIM) of the
    same maps, timed alone."""
    explain = functools.partial(xaifn.gradient, net)
    names = [name for name, cell in net.cells_and_names()
             if any(p.requires_grad for p in cell.get_parameters(expand=False))][::-1]
    names = names if layers is None else names[:layers]

    def direct():
        out = None
        for _ in range(len(names) + 1):
            out = explain(x, t)
        return out

    def run(explain_fn_of_net=lambda m: functools.partial(xaifn.gradient, m)):
        return metrics.model_randomization(explain_fn_of_net, net, x, t, layers=names).spearman
    recorded = []
    run(lambda m: lambda inputs, targets: recorded.append(xaifn.gradient(m, inputs, targets)) or recorded[-1])
    maps = [_checks.check_saliency(m) for m in recorded]
    measures = functools.partial(importlib.import_module("xaifn.metrics.randomization")._similarities,
                                 tuple(names), maps[0], np.stack(maps[1:], 1))
    timing, cpu = interleaved({"metric": run, "direct": direct, "similarities": measures}, rounds)
    name, what = f"model_randomization ({len(names)} layers)", f"{len(names) + 1} x gradient"
    rows = [row(name, label, x.shape[0], what, timing, cpu, "direct"),
            row(name, label, x.shape[0], f"{what} + similarities alone", *with_sum(timing, cpu, "direct", "similarities"))]
    for result in rows:
        print_row(result)
    return rows


def larger_batch_rows(label, net, n, shape, layers, rounds):
    """Model randomisation at a larger batch: its per-call host work (redraws) does not grow with N."""
    x = ms.Tensor(np.random.default_rng(0).random((n,) + shape), ms.float32)
    t = ms.Tensor(np.arange(n) % 10, ms.int32)
    return randomization_rows(label, net, x, t, layers, rounds)


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


def print_row(result):
    print(f"| {result['metric']} | {result['net']} | {result['n']} | {result['baseline']} | "
          f"{result['metric_s']:.3f} | {result['baseline_s']:.3f} | {result['ratio']:.2f} | "
          f"{result['cpu_ratio']:.2f} | {result['overhead_ms']:+.0f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chunk", type=int, default=256, help="perturbed images per step")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 7)
    print("| metric | net | N | baseline | metric s | baseline s | ratio | CPU-time ratio | metric - baseline ms |\n"
          "|---|---|---|---|---|---|---|---|---|")
    rows = []
    for label, factory, n, shape, num_steps, num_noise, layers, larger_n in workloads(args.quick):
        net = factory()
        x = ms.Tensor(np.random.default_rng(0).random((n,) + shape), ms.float32)
        t = ms.Tensor(np.arange(n) % 10, ms.int32)
        maps = xaifn.gradient(net, x, t)
        rows += perturbation_rows(label, net, x, t, maps, num_steps, args.chunk, rounds)
        rows += explainer_rows(label, net, x, t, num_noise, layers, rounds)
        if larger_n:
            rows += larger_batch_rows(label, net, larger_n, shape, layers, rounds)
    rows += localization_rows(args.quick)
    print(f"load average: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(dict(chunk=args.chunk, rounds=rounds, rows=rows, load=os.getloadavg()), handle, indent=2)


if __name__ == "__main__":
    main()
