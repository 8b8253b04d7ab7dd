"""Peak memory of the perturbation methods against the network's own chunked forward.

Each configuration runs in a fresh process and reports its VmHWM (peak resident set). The baseline
is the network's compiled eval-mode forward (`ms.jit`) of the same number of images, in batches of
the same number of images per step as the method used, each batch made from masks in numpy.

Net (`TinyCNN`): AvgPool 4x4/4 -> Conv 3->8 3x3 -> ReLU -> Conv 8->8 3x3 -> ReLU -> global mean ->
Dense 8->10: cheap enough that 20000 masks at 512 x 512 fit in a few minutes on 2 cores, with
intermediate outputs that grow with the image like any CNN's.

Usage:
    python benchmarks/bench_memory.py                       # the table of benchmarks/README.md
    python benchmarks/bench_memory.py --sizes 32 --masks 500 --chunk 256
    python benchmarks/bench_memory.py --child rise 224 2000 256MiB   # one configuration
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's xaifn
import numpy as np  # noqa: E402
import mindspore as ms  # noqa: E402
from mindspore import nn, ops  # noqa: E402


class TinyCNN(nn.Cell):
    """AvgPool 4 -> Conv 3x3 (8) -> ReLU -> Conv 3x3 (8) -> ReLU -> global mean -> Dense 10."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(kernel_size=4, stride=4)
        self.conv1 = nn.Conv2d(3, 8, 3, pad_mode="same", has_bias=True)
        self.conv2 = nn.Conv2d(8, 8, 3, pad_mode="same", has_bias=True)
        self.relu = nn.ReLU()
        self.fc = nn.Dense(8, 10)

    def construct(self, x):
        x = self.relu(self.conv2(self.relu(self.conv1(self.pool(x)))))
        return self.fc(x.mean(axis=(2, 3)))


def _vmhwm_mib():
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(l for l in status if l.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def _chunk_arg(text):
    return int(text) if text.isdigit() else text


def child(method, size, num_masks, chunk):
    """Run one configuration in this (fresh) process; print 'peak_mib seconds'."""
    import xaifn
    from xaifn import _checks, _chunked
    net = TinyCNN()
    x = ms.Tensor(np.random.default_rng(0).random((1, 3, size, size)), ms.float32)
    masks = xaifn.RiseMasks(0, num_masks, (size, size))
    start = time.perf_counter()
    if method == "rise":
        xaifn.rise(net, nn.Softmax(), x, 1, masks, chunk=chunk).asnumpy()
    elif method == "occlusion":
        xaifn.occlusion(net, nn.Softmax(), x, 1, chunk=chunk).asnumpy()
    else:  # the network's own compiled forward of the same masked images, as many per step
        step = _chunked.images_per_step(_checks.check_chunk(chunk), _chunked.bytes_per_image(net, x))
        forward = ms.jit(xaifn.network_view(net))
        image = x.asnumpy()
        for m0 in range(0, num_masks, step):
            batch = image * np.asarray(masks[m0:min(m0 + step, num_masks)])
            ops.softmax(forward(ms.Tensor(batch, ms.float32)), -1).asnumpy()
    print(f"{_vmhwm_mib():.0f} {time.perf_counter() - start:.1f}")


def run_child(method, size, num_masks, chunk):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, __file__, "--child", method, str(size), str(num_masks), str(chunk)],
                         capture_output=True, text=True, check=True, env=env).stdout
    peak, seconds = out.split()[-2:]
    return float(peak), float(seconds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224, 512])
    parser.add_argument("--masks", type=int, nargs="+", default=[500, 2000, 20000])
    parser.add_argument("--chunk", default=None, help="images (int) or bytes ('256MiB'); default: xaifn's")
    parser.add_argument("--methods", nargs="+", default=["rise", "forward"])
    args = parser.parse_args(argv)
    if args.child:
        method, size, num_masks, chunk = args.child
        child(method, int(size), int(num_masks), _chunk_arg(chunk))
        return
    from xaifn._chunked import DEFAULT_CHUNK
    chunk = DEFAULT_CHUNK if args.chunk is None else _chunk_arg(args.chunk)
    print(f"chunk {chunk!r}; peak resident memory (VmHWM, MiB) of a fresh process, seconds\n")
    print("| size | masks | " + " | ".join(f"{m} MiB | {m} s" for m in args.methods) + " |")
    print("|---|---|" + "---|---|" * len(args.methods))
    for size in args.sizes:
        for num_masks in args.masks:
            cells = []
            for method in args.methods:
                peak, seconds = run_child(method, size, num_masks, chunk)
                cells.append(f"{peak:.0f} | {seconds:.1f}")
            print(f"| {size}² | {num_masks} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
