"""Benchmark Integrated Gradients, SmoothGrad and ScoreCAM against the network's own compiled passes.

* Integrated Gradients with S steps costs N * S forward+backward passes: its floor is the network's
  compiled forward+backward (``ms.grad`` of the one-hot-weighted target logits w.r.t. the input)
  over N * S images, in batches of the same chunk, timed in the same run.
* SmoothGrad of `xaifn.gradient` with S noise samples: the same floor over N * S images.
* ScoreCAM at a layer of K channels costs N * K forwards (plus one forward for the activations):
  its floor is the compiled eval-mode forward over N * K images in batches of the same chunk.

Two kinds of rows:

* "judged": a realistic workload whose cost is the network's (mindcv's resnet18 at 112 x 112 px;
  for ScoreCAM also SmallResNet at 128 x 128; one or two images, a run of seconds), where the
  <= 1.1 x target is judged;
* "overhead": the seed's tiny networks (LeNet5 at 32 x 32: a forward of 100 images takes a few
  ms), where the difference method - floor is the fixed host cost of one call (argument checks,
  cache look-ups, result checks, the method's small kernels), reported in ms.

Reported: the fixed cost of one call (each method with the least work on LeNet5, 31 interleaved
rounds, minus the floor for the same images), then per row the first call (compile included), warm
median, the floor's, their ratio (wall clock and process CPU time), the difference in ms, and the
peak memory (VmHWM of a fresh process) of
Integrated Gradients with 200 vs 2000 steps at one chunk. Timings are interleaved round by round
(method, floor, method, ...); on a shared machine, read the ratios, not the seconds.

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


def resnet18(num_class):
    import mindcv  # pylint: disable=import-outside-toplevel
    return mindcv.create_model("resnet18", num_classes=num_class)


METHODS = ("integrated_gradients", "smooth_grad", "scorecam")


def cases(quick, chunk):
    small = dict(kind="overhead", chunk=chunk, methods=METHODS)
    if quick:
        return [dict(small, name="LeNet5", factory=LeNet5, n=2, shape=(3, 32, 32), layer="conv2", steps=16,
                     samples=8, repeats=2)]
    return [dict(small, name="LeNet5", factory=LeNet5, n=8, shape=(3, 32, 32), layer="conv2", steps=50, samples=50,
                 repeats=7),
            dict(small, name="SmallResNet", factory=SmallResNet, n=2, shape=(3, 64, 64), layer="stages.2", steps=50,
                 samples=25, repeats=7),
            dict(kind="judged", name="resnet18", factory=resnet18, n=2, shape=(3, 112, 112), layer="layer4", steps=16,
                 samples=16, chunk=32, repeats=9, methods=("integrated_gradients", "smooth_grad")),
            dict(kind="judged", name="SmallResNet", factory=SmallResNet, n=2, shape=(3, 128, 128), layer="stages.2",
                 steps=16, samples=16, chunk=64, repeats=9, methods=("scorecam",)),
            dict(kind="judged", name="resnet18", factory=resnet18, n=1, shape=(3, 112, 112), layer="layer3", steps=16,
                 samples=16, chunk=64, repeats=3, methods=("scorecam",))]


def method_table(quick, chunk):
    rows = []
    for case in cases(quick, chunk):
        ms.set_seed(0)
        net = case["factory"](num_class=NUM_CLASSES)
        n, shape, step = case["n"], case["shape"], case["chunk"]
        x = ms.Tensor(np.random.default_rng(0).standard_normal((n,) + shape), ms.float32)
        t = ms.Tensor(np.arange(n, dtype=np.int32) % NUM_CLASSES)
        softmax = nn.Softmax()
        noise = xaifn.GaussianNoise(0, case["samples"], shape, 0.2)
        num_channels = _views.trace_layer(net, case["layer"], shape, ms.float32)[1][1]
        images = {"integrated_gradients": n * case["steps"], "smooth_grad": n * case["samples"],
                  "scorecam": n * num_channels}
        runs = {   # name -> (the method's call, the floor's kind); the floors are built when used
            "integrated_gradients": (lambda: xaifn.integrated_gradients(net, x, t, steps=case["steps"], chunk=step),
                                     "fwd+bwd"),
            "smooth_grad": (lambda: xaifn.smooth_grad(lambda a, b: xaifn.gradient(net, a, b), x, t, noise, chunk=step),
                            "fwd+bwd"),
            "scorecam": (lambda: xaifn.scorecam(net, softmax, x, t, layer=case["layer"], chunk=step), "fwd"),
        }
        for name in case["methods"]:
            method, kind = runs[name]
            baseline = floor(net, shape, images[name], step, kind == "fwd+bwd")
            timing = interleaved({"method": method, "floor": baseline}, case["repeats"])
            ratio = timing["method"][1] / timing["floor"][1]
            cpu_ratio = timing["method"][2] / timing["floor"][2]
            extra_ms = 1000 * (timing["method"][1] - timing["floor"][1])
            rows.append(dict(row=case["kind"], network=case["name"], size=shape[1:], n=n, method=name,
                             images=images[name], floor=kind, chunk=step, first_s=timing["method"][0],
                             method_s=timing["method"][1], floor_s=timing["floor"][1], ratio=ratio,
                             cpu_ratio=cpu_ratio, extra_ms=extra_ms, load=os.getloadavg()[0]))
            print(f"{case['kind']:8s} {case['name']:11s} {shape[1]:3d}px {name:21s} {images[name]:5d} images  "
                  f"first {timing['method'][0]:6.2f} s  warm {timing['method'][1]:7.3f} s  {kind} "
                  f"{timing['floor'][1]:7.3f} s  ratio {ratio:5.3f}  cpu ratio {cpu_ratio:5.3f}  "
                  f"extra {extra_ms:7.1f} ms  load {os.getloadavg()[0]:.1f}", flush=True)
    return rows


def fixed_costs(rounds):
    """{name: (method ms, floor ms)}: warm medians of each method on LeNet5 with the least work
    (one 32 x 32 image; 1 step, 1 noise sample; ScoreCAM's 16 masked images) against the floor
    for the same images: the difference is the fixed host cost of one call. `gradient` is
    `xaifn.gradient` on one image: what SmoothGrad pays per call of its method besides the work."""
    ms.set_seed(0)
    net = LeNet5(num_class=NUM_CLASSES)
    shape = (3, 32, 32)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((1,) + shape), ms.float32)
    softmax, noise = nn.Softmax(), xaifn.GaussianNoise(0, 1, shape, 0.2)
    runs = {
        "gradient": (lambda: xaifn.gradient(net, x, 1), floor(net, shape, 1, 1, True)),
        "integrated_gradients": (lambda: xaifn.integrated_gradients(net, x, 1, steps=1), floor(net, shape, 1, 1, True)),
        "smooth_grad": (lambda: xaifn.smooth_grad(lambda a, b: xaifn.gradient(net, a, b), x, 1, noise),
                        floor(net, shape, 1, 1, True)),
        "scorecam": (lambda: xaifn.scorecam(net, softmax, x, 1, layer="conv2"), floor(net, shape, 16, 16, False)),
    }
    costs = {}
    for name, (method, baseline) in runs.items():
        timing = interleaved({"method": method, "floor": baseline}, rounds)
        costs[name] = (1000 * timing["method"][1], 1000 * timing["floor"][1])
        print(f"fixed cost  {name:21s} method {costs[name][0]:6.2f} ms  floor {costs[name][1]:6.2f} ms  "
              f"extra {costs[name][0] - costs[name][1]:6.2f} ms", flush=True)
    return costs


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
    parser.add_argument("--chunk", type=int, default=256,
                        help="images per step of the overhead rows (an int, for equal floors)")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    costs = fixed_costs(5 if args.quick else 31)
    rows = method_table(args.quick, args.chunk)
    memory = {steps: peak_memory(steps, args.chunk) for steps in ((50, 200) if args.quick else (200, 2000))}
    for steps, mb in memory.items():
        print(f"peak memory (VmHWM, fresh process) IG LeNet5 2 images, {steps} steps, chunk {args.chunk}: "
              f"{mb:.0f} MB", flush=True)
    print(f"load average: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(dict(rows=rows, fixed_cost_ms=costs, peak_memory_mb=memory, chunk=args.chunk,
                           load=os.getloadavg()), out, indent=2)


if __name__ == "__main__":
    main()
