"""Benchmark Occlusion, RISE and RISEPlus against the network's own compiled forward.

Every perturbation method costs (number of perturbed images) forward passes; its floor is the
network's compiled forward over the same number of images, in batches of the same chunk size,
timed in the same run. Reported: seconds per call (first call = compile, separately), the ratio
to that forward, the chunk-size sweep, RISEPlus relative to RISE on the same masks, OoD `fit`
throughput, and the peak memory (VmHWM of a fresh process) of RISE with 6000 vs 24000 masks.

Target (issues): Occlusion and RISE <= 1.05 x the forward; RISEPlus <= 1.2 x RISE.

Usage:
    python benchmarks/bench_perturbation.py            # full run (several minutes on 2 cores)
    python benchmarks/bench_perturbation.py --quick    # smoke test
    python benchmarks/bench_perturbation.py --json out.json
"""
import argparse
import json
import subprocess
import sys
import time

import numpy as np
import mindspore as ms
from mindspore import nn

import xaifn
from xaifn import ood
from xaifn.models import LeNet5, SmallResNet
from xaifn.occlusion import default_window
from xaifn import _checks, _chunked
from xaifn._chunked import DEFAULT_CHUNK


def timed(fn, repeats):
    """(first call seconds, median of `repeats` warm calls); every call synchronises."""
    start = time.perf_counter()
    fn().asnumpy()
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().asnumpy()
        warm.append(time.perf_counter() - start)
    return first, float(np.median(warm))


def forward_cost(net, sample_shape, num_images, chunk):
    """Seconds for the compiled eval-mode forward of `num_images` images in batches of `chunk`
    (as many images per step as the methods use for that chunk: an int, or a byte budget)."""
    sample = ms.Tensor(np.zeros((1,) + sample_shape), ms.float32)
    chunk = _chunked.images_per_step(_checks.check_chunk(chunk), _chunked.bytes_per_image(net, sample))
    view = xaifn.network_view(net)
    forward = ms.jit(view)
    batch = ms.Tensor(np.random.default_rng(1).random((chunk,) + sample_shape), ms.float32)
    forward(batch).asnumpy()
    calls = -(-num_images // chunk)

    def run():
        out = None
        for _ in range(calls):
            out = forward(batch)
        return out
    return run


def cases(quick):
    """(name, net factory, N, sample shape, RISE masks, methods, warm repeats)."""
    if quick:
        return [("LeNet5", LeNet5, 1, (3, 32, 32), 256, ("occlusion", "rise", "rise_plus"), 1)]
    return [("LeNet5", LeNet5, 1, (3, 32, 32), 6000, ("occlusion", "rise", "rise_plus"), 3),
            ("LeNet5", LeNet5, 8, (3, 32, 32), 6000, ("occlusion", "rise"), 1),
            ("SmallResNet", SmallResNet, 1, (3, 64, 64), 600, ("occlusion", "rise", "rise_plus"), 1)]


def method_table(quick, chunk):
    rows = []
    softmax = nn.Softmax()
    for name, factory, n, shape, num_masks, methods, repeats in cases(quick):
        ms.set_seed(0)
        net = factory()
        x = ms.Tensor(np.random.default_rng(0).random((n,) + shape), ms.float32)
        masks = xaifn.RiseMasks(0, num_masks, shape[1:])
        windows = xaifn.OcclusionWindows(shape[1:], *zip(*(default_window(s) for s in shape[1:])))
        features = xaifn.network_view(net, output_features=True)
        inlier = ood.inlier_fn(ood.init(0, net.num_features, 10), features)
        runs = {
            "occlusion": (len(windows) + 1, lambda: xaifn.occlusion(net, softmax, x, 1, chunk=chunk)),
            "rise": (num_masks, lambda: xaifn.rise(net, softmax, x, 1, masks, chunk=chunk)),
            "rise_plus": (num_masks, lambda: xaifn.rise_plus(net, softmax, inlier, x, 1, masks, chunk=chunk)),
        }
        for method in methods:
            images_per_sample, run = runs[method]
            first, warm = timed(run, repeats)
            _, base = timed(forward_cost(net, shape, n * images_per_sample, chunk), repeats)
            rows.append(dict(net=name, n=n, method=method, masks=images_per_sample, first_s=first,
                             warm_s=warm, forward_s=base, ratio=warm / base))
            print(f"| {name} | {n} | {method} | {images_per_sample} | {first:.2f} | {warm:.2f} | "
                  f"{base:.2f} | {warm / base:.3f} |", flush=True)
    return rows


def chunk_sweep(quick, repeats):
    rows = []
    net = LeNet5()
    x = ms.Tensor(np.random.default_rng(0).random((1, 3, 32, 32)), ms.float32)
    num_masks = 512 if quick else 1536
    masks = xaifn.RiseMasks(0, num_masks, (32, 32))
    for chunk in ((32, 128) if quick else (32, 64, 128, 256, 512, 1024)):
        _, warm = timed(lambda: xaifn.rise(net, nn.Softmax(), x, 1, masks, chunk=chunk), repeats)
        _, base = timed(forward_cost(net, (3, 32, 32), num_masks, chunk), repeats)
        rows.append(dict(chunk=chunk, rise_s=warm, forward_s=base, images_per_s=num_masks / warm))
        print(f"| {chunk} | {warm:.2f} | {base:.2f} | {warm / base:.3f} | {num_masks / warm:.0f} |", flush=True)
    return rows


_MEMORY_CHILD = """
import sys, numpy as np, mindspore as ms
from mindspore import nn
import xaifn
from xaifn.models import LeNet5
num_masks, chunk = int(sys.argv[1]), (int(sys.argv[2]) if sys.argv[2].isdigit() else sys.argv[2])
x = ms.Tensor(np.random.default_rng(0).random((1, 3, 32, 32)), ms.float32)
xaifn.rise(LeNet5(), nn.Softmax(), x, 1, xaifn.RiseMasks(0, num_masks, (32, 32)), chunk=chunk).asnumpy()
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak on Linux
print(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
"""


def peak_memory(num_masks, chunk):
    """Peak resident memory (MiB, VmHWM) of a fresh process that runs RISE once with lazy masks."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(num_masks), str(chunk)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 1024


def fit_throughput(quick):
    """Samples per second of `ood.fit` on precomputed features (the head's own cost)."""
    rng = np.random.default_rng(0)
    batches = [(ms.Tensor(rng.normal(size=(64, 84)), ms.float32), ms.Tensor(rng.integers(0, 10, 64), ms.int32))
               for _ in range(10)]
    params = ood.init(0, 84, 10)
    ood.fit(params, batches, epochs=1)  # compile
    epochs = 2 if quick else 10
    start = time.perf_counter()
    ood.fit(params, batches, epochs=epochs)
    return epochs * 640 / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--chunk", type=lambda t: int(t) if t.isdigit() else t, default=DEFAULT_CHUNK,
                        help="images per step (int) or a byte budget such as 128MiB")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 2
    print("## chunk sweep: RISE on LeNet5, 1 image\n\n| chunk | RISE s | forward s | ratio | images/s |\n|---|---|---|---|---|")
    sweep = chunk_sweep(args.quick, repeats)
    print(f"\n## methods (chunk {args.chunk})\n\n| net | N | method | perturbations/sample | first s | warm s | "
          "forward s | ratio |\n|---|---|---|---|---|---|---|---|")
    rows = method_table(args.quick, args.chunk)
    memory = {k: peak_memory(k, args.chunk) for k in ((600, 2400) if args.quick else (6000, 24000))}
    print("\n## peak memory, RISE with lazy masks (VmHWM of a fresh process)\n")
    for k, mib in memory.items():
        print(f"- {k} masks: {mib:.0f} MiB")
    throughput = fit_throughput(args.quick)
    print(f"\n## ood.fit: {throughput:.0f} samples/s (84 features, batch 64, head only)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(sweep=sweep, methods=rows, memory_mib=memory, fit_samples_per_s=throughput), f, indent=2)


if __name__ == "__main__":
    main()
