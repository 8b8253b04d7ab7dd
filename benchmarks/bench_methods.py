"""Benchmark Integrated Gradients, SmoothGrad and ScoreCAM against the network's own compiled passes.

* Integrated Gradients with S steps costs N * S forward+backward passes: its floor is the network's
  compiled forward+backward (``ms.grad`` of the one-hot-weighted target logits w.r.t. the input)
  over N * S images, in batches of the same chunk, timed in the same run.
* SmoothGrad of `xaifn.gradient` with S noise samples: the same floor over N * S images.
* ScoreCAM at a layer of K channels costs N * K forwards (plus one forward for the activations):
  its floor is the compiled eval-mode forward over N * K images in batches of the same chunk.

Reported: first call (compile included), warm median, ratio to the floor (target <= 1.1), and the
peak memory (VmHWM of a fresh process) of Integrated Gradients with 50 vs 500 steps at one chunk.
Timings are interleaved round by round (method, floor, method, ...); on a shared machine, read
the ratios, not the seconds.

Usage:
    python benchmarks/bench_methods.py            # full run (several minutes on 2 cores)
    python benchmarks/bench_methods.py --quick    # smoke test
    python benchmarks/bench_methods.py --json out.json
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import mindspore as ms
from mindspore import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import xaifn  # noqa: E402  pylint: disable=wrong-import-position
from xaifn import _views  # noqa: E402  pylint: disable=wrong-import-position
from xaifn._chunked import DEFAULT_CHUNK  # noqa: E402  pylint: disable=wrong-import-position
from xaifn.models import LeNet5, SmallResNet  # noqa: E402  pylint: disable=wrong-import-position

NUM_CLASSES = 10


def interleaved(functions, repeats):
    """{name: (first call s, warm median wall s, warm median process CPU s)}; warm calls
    alternate between the functions. Process CPU time (all threads) is less sensitive than the
    wall clock to other processes competing for the cores."""
    first, warm, cpu = {}, {name: [] for name in functions}, {name: [] for name in functions}
    for name, fn in functions.items():
        start = time.perf_counter()
        fn().asnumpy()
        first[name] = time.perf_counter() - start
    for _ in range(repeats):
        for name, fn in functions.items():
            start, used = time.perf_counter(), time.process_time()
            fn().asnumpy()
            warm[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - used)
    return {name: (first[name], float(np.median(warm[name])), float(np.median(cpu[name]))) for name in functions}


def floor(net, sample_shape, num_images, chunk, backward):
    """The network's compiled forward (or forward+backward) over `num_images` images in batches of
    at most `chunk`: a function to time."""
    view = xaifn.network_view(net)
    size = min(chunk, num_images)
    batch = ms.Tensor(np.random.default_rng(1).random((size,) + sample_shape), ms.float32)
    onehot = ms.Tensor(np.eye(NUM_CLASSES, dtype=np.float32)[np.arange(size) % NUM_CLASSES])

    def score(x, weights):
        return (view(x) * weights).sum()

    def grad_of(x, weights):
        return ms.grad(score, grad_position=0)(x, weights)
    fn, args = (ms.jit(grad_of), (batch, onehot)) if backward else (ms.jit(view), (batch,))
    calls = -(-num_images // size)

    def run():
        out = None
        for _ in range(calls):
            out = fn(*args)
        return out
    return run


def cases(quick):
    if quick:
        return [dict(name="LeNet5", factory=LeNet5, n=2, shape=(3, 32, 32), layer="conv2", steps=16, samples=8)]
    return [dict(name="LeNet5", factory=LeNet5, n=8, shape=(3, 32, 32), layer="conv2", steps=50, samples=50),
            dict(name="SmallResNet", factory=SmallResNet, n=2, shape=(3, 64, 64), layer="stages.2", steps=50,
                 samples=25)]


def method_table(quick, chunk, repeats):
    rows = []
    for case in cases(quick):
        ms.set_seed(0)
        net = case["factory"](num_class=NUM_CLASSES)
        n, shape = case["n"], case["shape"]
        x = ms.Tensor(np.random.default_rng(0).standard_normal((n,) + shape), ms.float32)
        t = ms.Tensor(np.arange(n, dtype=np.int32) % NUM_CLASSES)
        softmax = nn.Softmax()
        noise = xaifn.GaussianNoise(0, case["samples"], shape, 0.2)
        num_channels = _views.trace_layer(net, case["layer"], shape, ms.float32)[1][1]
        images = {"integrated_gradients": n * case["steps"], "smooth_grad": n * case["samples"],
                  "scorecam": n * num_channels}
        runs = {
            "integrated_gradients": (lambda: xaifn.integrated_gradients(net, x, t, steps=case["steps"], chunk=chunk),
                                     floor(net, shape, images["integrated_gradients"], chunk, True), "fwd+bwd"),
            "smooth_grad": (lambda: xaifn.smooth_grad(lambda a, b: xaifn.gradient(net, a, b), x, t, noise,
                                                      chunk=chunk),
                            floor(net, shape, images["smooth_grad"], chunk, True), "fwd+bwd"),
            "scorecam": (lambda: xaifn.scorecam(net, softmax, x, t, layer=case["layer"], chunk=chunk),
                         floor(net, shape, images["scorecam"], chunk, False), "fwd"),
        }
        for name, (method, baseline, kind) in runs.items():
            timing = interleaved({"method": method, "floor": baseline}, repeats)
            ratio = timing["method"][1] / timing["floor"][1]
            cpu_ratio = timing["method"][2] / timing["floor"][2]
            rows.append(dict(network=case["name"], method=name, images=images[name], floor=kind,
                             first_s=timing["method"][0], method_s=timing["method"][1],
                             floor_s=timing["floor"][1], ratio=ratio, cpu_ratio=cpu_ratio))
            print(f"{case['name']:12s} {name:22s} {images[name]:6d} images  first {timing['method'][0]:7.2f} s  "
                  f"warm {timing['method'][1]:7.3f} s  {kind} {timing['floor'][1]:7.3f} s  ratio {ratio:5.3f}  "
                  f"cpu ratio {cpu_ratio:5.3f}", flush=True)
    return rows


MEMORY_SCRIPT = """
import sys
import numpy as np, mindspore as ms
sys.path.insert(0, {root!r})
import xaifn
from xaifn.models import LeNet5
net = LeNet5()
x = ms.Tensor(np.random.default_rng(0).random((2, 3, 32, 32)), ms.float32)
xaifn.integrated_gradients(net, x, 1, steps={steps}, chunk={chunk}).asnumpy()
with open("/proc/self/status") as status:
    print([int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")][0])
"""


def peak_memory(steps, chunk):
    """VmHWM (MB) of a fresh process running Integrated Gradients on LeNet5 with `steps` steps."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
    script = MEMORY_SCRIPT.format(root=os.path.abspath(root), steps=steps, chunk=chunk)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ig_memory.py")
        with open(path, "w") as file:
            file.write(script)
        out = subprocess.run([sys.executable, path], capture_output=True, text=True, check=True, cwd=folder)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 7
    rows = method_table(args.quick, args.chunk, repeats)
    memory = {steps: peak_memory(steps, args.chunk) for steps in ((50, 200) if args.quick else (200, 2000))}
    for steps, mb in memory.items():
        print(f"peak memory (VmHWM, fresh process) IG LeNet5 2 images, {steps} steps, chunk {args.chunk}: "
              f"{mb:.0f} MB", flush=True)
    print(f"load average: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(dict(rows=rows, peak_memory_mb=memory, chunk=args.chunk, load=os.getloadavg()), out, indent=2)


if __name__ == "__main__":
    main()
