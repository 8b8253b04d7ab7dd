"""Benchmark `xaifn.explain_dataset` against the bare methods on the same images, and 1 vs 2 workers.

The bare baseline calls the same method functions on the same batches, already in memory as
Tensors ("bare"), and the same plus the runner's compiled prediction forward pass of each batch
("bare + forward": what any runner that records predictions pays); `explain_dataset` adds the data
pipeline, the pictures and the zarr writes to that. Both are warmed up first (compiled kernels are
cached per network), then timed in interleaved rounds in the same process; reported: images/s (best
round), the wall-clock ratio, the ratio of process CPU times (all threads: on a loaded machine the
wall clock favours the runner, whose pipeline and writer threads take a larger share of the cores),
the fixed cost of one call (a one-batch run minus bare + forward) and the cost per batch beyond
bare + forward. Target: the store costs <= 5 %, i.e. a ratio to bare + forward >= 0.95, judged on the
realistic rows (SmallResNet at 128 px, mindcv resnet18 at 112 px); the LeNet5 rows show the fixed
cost per batch against cheap work. Then the same RISE job under `msrun` with 1 and 2 CPU workers
(wall time of the whole launch, and the explain time inside the workers).

Usage (from the repository root; PYTHONPATH makes the workers import this checkout):
    PYTHONPATH=$PWD python benchmarks/bench_dataset.py             # ~12 min on 2 loaded cores
    PYTHONPATH=$PWD python benchmarks/bench_dataset.py --quick     # smoke test
    PYTHONPATH=$PWD python benchmarks/bench_dataset.py --only resnet --no-workers --json out.json
"""
import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn

import xaifn
from xaifn import demo
from xaifn import dataset_store
from xaifn.models import LeNet5, SmallResNet

def lenet():
    ms.set_seed(0)
    return LeNet5()


def small_resnet():
    ms.set_seed(0)
    return SmallResNet()


def resnet18():
    import mindcv  # pylint: disable=import-outside-toplevel
    ms.set_seed(0)
    return mindcv.create_model("resnet18", num_classes=10, pretrained=False)


#: name -> (network, image size, methods, options, images in the full run, batch). The LeNet5 rows
#: show the fixed cost per batch against cheap work; the last rows are realistic workloads, where
#: the network's cost dominates and the <= 5 % target is judged.
WORKLOADS = {
    "LeNet5 32 px: gradient": (lenet, 32, ["gradient"], {}, 1024, 32),
    "LeNet5 32 px: rise (100 masks)": (lenet, 32, ["rise"], dict(num_masks=100), 96, 32),
    "LeNet5 32 px: gradient + gradcam + occlusion": (lenet, 32, ["gradient", "gradcam", "occlusion"],
                                                     dict(layer="conv2", window=8, stride=4), 96, 32),
    "SmallResNet 128 px: gradient": (small_resnet, 128, ["gradient"], {}, 128, 16),
    "mindcv resnet18 112 px: gradient": (resnet18, 112, ["gradient"], {}, 64, 16),
}

#: One activation Cell for both sides, so that the compiled kernels keyed on it are reused.
ACTIVATION = nn.Softmax()


def images(count, size=32, seed=0):
    """(count, 3, size, size) float32 images and labels."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (count, 3, size, size)).astype(np.float32), (np.arange(count) % 10).astype(np.int32)


def network():
    return lenet()


def bare(net, methods, options, x, batch, forward=False):
    """(wall, CPU) seconds of the method functions alone over the images in memory, batch by batch;
    with `forward`, also the runner's compiled prediction forward pass of each batch."""
    opts = dict(xaifn.dataset_runner.METHOD_OPTIONS, **options)
    table = demo.explainers(net, ACTIVATION, None, xaifn.RiseMasks(opts["seed"], opts["num_masks"], x.shape[2:]),
                            layer=opts["layer"], window=opts["window"], stride=opts["stride"])
    batches = [ms.Tensor(x[i:i + batch]) for i in range(0, len(x), batch)]
    targets = [ms.Tensor(np.zeros(len(b), np.int32)) for b in batches]
    predict = xaifn.dataset_runner.probability_kernel(net, ACTIVATION)
    start, cpu = time.perf_counter(), time.process_time()
    for b, t in zip(batches, targets):
        if forward:
            predict(b).asnumpy()
        for name in methods:
            table[name](b, t).asnumpy()
    return time.perf_counter() - start, time.process_time() - cpu


def full(net, methods, options, x, labels, batch, folder):
    """(wall, CPU) seconds of explain_dataset over the same images into a fresh store."""
    store = pathlib.Path(folder) / "store"
    shutil.rmtree(store, ignore_errors=True)
    data = ds.NumpySlicesDataset((x, labels), column_names=["image", "label"], shuffle=False).batch(batch)
    start, cpu = time.perf_counter(), time.process_time()
    xaifn.explain_dataset(net, data, methods, store, method_options=options, activation=ACTIVATION, progress=False)
    return time.perf_counter() - start, time.process_time() - cpu


def compare(scale, rounds, only=None):
    """Per workload: images/s of the bare methods and of explain_dataset (best of `rounds`
    interleaved rounds), their ratio, explain_dataset's fixed cost per call (a one-batch run minus
    bare + forward) and its cost per batch beyond bare + forward (the rest, over the batches)."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, (factory, size, methods, options, count, batch) in WORKLOADS.items():
            if only and not any(word in name for word in only):
                continue
            net = factory()
            count = max(batch, int(count * scale) // batch * batch)
            x, labels = images(count, size)
            sides = {"bare": lambda n: bare(net, methods, options, x[:n], batch),
                     "bare + forward": lambda n: bare(net, methods, options, x[:n], batch, forward=True),
                     "explain_dataset": lambda n: full(net, methods, options, x[:n], labels[:n], batch, folder)}
            one, times = ({k: [] for k in sides} for _ in range(2))
            for _ in range(rounds + 1):                  # the first round compiles and is dropped
                for key, side in sides.items():          # interleaved
                    one[key].append(side(batch))
                    times[key].append(side(count))
            wall = {k: min(w for w, _ in v[1:]) for k, v in times.items()}
            median = {k: float(np.median([w for w, _ in v[1:]])) for k, v in times.items()}
            cpu = {k: min(c for _, c in v[1:]) for k, v in times.items()}
            fixed = min(w for w, _ in one["explain_dataset"][1:]) - min(w for w, _ in one["bare + forward"][1:])
            per_batch = (wall["explain_dataset"] - wall["bare + forward"] - fixed) / (count // batch)
            row = dict(workload=name, images=count, batch=batch, fixed_cost_s=fixed, per_batch_ms=per_batch * 1e3,
                       samples=times, one_batch=one,
                       **{f"{k} images/s": count / w for k, w in wall.items()},
                       ratio_to_bare=wall["bare"] / wall["explain_dataset"],
                       ratio_to_bare_forward=wall["bare + forward"] / wall["explain_dataset"],
                       median_ratio_to_bare_forward=median["bare + forward"] / median["explain_dataset"],
                       cpu_ratio_to_bare_forward=cpu["bare + forward"] / cpu["explain_dataset"])
            rows.append(row)
            print(f"{name:<46} {count:5d} images, images/s: "
                  + ", ".join(f"{k} {count / w:.1f}" for k, w in wall.items())
                  + f"; ratio to bare {row['ratio_to_bare']:.3f}, to bare + forward {row['ratio_to_bare_forward']:.3f}"
                  f" (median round {row['median_ratio_to_bare_forward']:.3f}, CPU time "
                  f"{row['cpu_ratio_to_bare_forward']:.3f}); fixed cost per call {fixed * 1e3:.0f} ms, "
                  f"per batch {per_batch * 1e3:.1f} ms", flush=True)
    return rows


def components(batch, repeats=7):
    """Milliseconds per batch of 32 x 32 images of each part of explain_dataset, alone (best of
    `repeats`: steady under load): the prediction forward, the pipeline, the writer's share (pictures
    and one store block of the default size, divided by its batches), and the methods."""
    from xaifn import dataset_runner  # pylint: disable=import-outside-toplevel
    net, (x, labels) = network(), images(batch * 8)
    xs = [ms.Tensor(x[i:i + batch]) for i in range(0, len(x), batch)]
    predict = dataset_runner.probability_kernel(net, ACTIVATION)
    data = ds.NumpySlicesDataset((x, labels), column_names=["image", "label"], shuffle=False).batch(batch)
    job = dict(probabilities=predict, net=net, methods={}, metrics={}, targets="prediction", mean=None, std=None)
    rows = dataset_runner.explain_batch(x[:batch], labels[:batch], None, job)
    rows["maps/gradient"] = np.random.default_rng(0).random((batch, 32, 32)).astype(np.float32)
    parts_of_block = [(x[i:i + batch], rows) for i in range(0, len(x), batch)]
    with tempfile.TemporaryDirectory() as folder:
        group = dataset_store.open_store(pathlib.Path(folder) / "s", {"bench": 1}, dict(
            num_rows=len(x), block=len(x), map_shape=(32, 32), methods=["gradient"], metrics=[], num_classes=10))
        handles = {}
        parts = {
            "prediction forward": lambda: [predict(v).asnumpy() for v in xs],
            "pipeline": lambda: list(dataset_runner._reading(  # pylint: disable=protected-access
                data, range(len(x))).create_tuple_iterator(num_epochs=1, output_numpy=True)),
            "rows of a batch (explain_batch, no method)": lambda: [dataset_runner.explain_batch(
                x[i:i + batch], labels[i:i + batch], None, job) for i in range(0, len(x), batch)],
            f"writer: pictures + one block of {len(x)} rows (7 arrays, one map)": lambda: dataset_runner._write_block(  # pylint: disable=protected-access
                group, 0, parts_of_block, job, handles),
        }
        for name, (_, _, methods, options, _, _) in list(WORKLOADS.items())[:3]:
            parts[f"methods: {name}"] = lambda m=methods, o=options: bare(net, m, o, x, batch)
        out = {}
        for name, fn in parts.items():
            fn()
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - start)
            out[name] = min(samples) / len(xs) * 1e3
            print(f"  {name:<60} {out[name]:8.2f} ms per batch of {batch}", flush=True)
    return out


WORKER_SCRIPT = '''
import sys, time, numpy as np, mindspore.dataset as ds, xaifn
sys.path.insert(0, {bench!r})
import bench_dataset as b
x, labels = b.images({count})
data = ds.NumpySlicesDataset((x, labels), column_names=["image", "label"], shuffle=False).batch({batch})
net = b.network()
start = time.perf_counter()
xaifn.explain_dataset(net, data, ["rise"], sys.argv[1], method_options=dict(num_masks=100), progress=False)
print("EXPLAIN_SECONDS", time.perf_counter() - start, flush=True)
'''


def workers(count, batch, folder):
    """{workers: (launch wall seconds, slowest worker's explain seconds)} under msrun."""
    script = pathlib.Path(folder) / "job.py"
    script.write_text(WORKER_SCRIPT.format(bench=str(pathlib.Path(__file__).resolve().parent), count=count,
                                           batch=batch))
    env = dict(os.environ, PATH=os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ["PATH"]]),
               PYTHONPATH=os.pathsep.join(filter(None, [str(pathlib.Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH")])))
    out = {}
    for n in (1, 2):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        logs = pathlib.Path(folder) / f"logs{n}"
        start = time.perf_counter()
        subprocess.run([str(pathlib.Path(sys.executable).parent / "msrun"), f"--worker_num={n}",
                        f"--local_worker_num={n}", "--master_addr=127.0.0.1", f"--master_port={port}",
                        f"--log_dir={logs}", "--join=True", str(script), str(pathlib.Path(folder) / f"store{n}")],
                       cwd=folder, env=env, capture_output=True, check=True, timeout=900)
        wall = time.perf_counter() - start
        inner = [float(line.split()[1]) for log in logs.glob("worker_*.log")
                 for line in log.read_text(errors="replace").splitlines() if line.startswith("EXPLAIN_SECONDS")]
        out[n] = dict(wall_s=wall, explain_s=max(inner), images_per_s=count / max(inner))
        print(f"msrun {n} worker(s): launch {wall:6.1f} s, explain {max(inner):6.1f} s "
              f"({count / max(inner):.1f} img/s)", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", nargs="*", help="run the workloads whose names hold one of these words")
    parser.add_argument("--no-workers", action="store_true", help="skip the msrun 1 vs 2 workers part")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per workload (default 4)")
    args = parser.parse_args()
    scale, batch, rounds = (1 / 32, 16, 1) if args.quick else (1.0, 32, 4)
    rounds = args.rounds or rounds
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)", flush=True)
    print("per-batch costs, each part alone:", flush=True)
    result = dict(components=components(batch, 2 if args.quick else 7))
    result["compare"] = compare(scale, rounds, args.only)
    if not args.no_workers:
        with tempfile.TemporaryDirectory() as folder:
            result["workers"] = workers(32 if args.quick else 96, batch, folder)
    result["load_average_after"] = os.getloadavg()[0]
    print(f"load average {result['load_average_after']:.2f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
