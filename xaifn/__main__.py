"""`python -m xaifn demo`: explain a small network with every method and save the maps.

For now the demo builds a LeNet5 with fixed-seed weights, explains a few fixed-seed images with
each method, prints a summary table and saves the maps (.npy) into the output folder.
"""
import argparse
import pathlib
import sys
import time

import numpy as np
import mindspore as ms
from mindspore import nn

import xaifn
from xaifn.models import LeNet5


def _methods(net, activation, num_masks):
    masks = xaifn.RiseMasks(seed=0, num_masks=num_masks, size=(32, 32))
    return {
        "gradient": lambda x, t: xaifn.gradient(net, x, t),
        "deconvolution": lambda x, t: xaifn.deconvolution(net, x, t),
        "guided_backprop": lambda x, t: xaifn.guided_backprop(net, x, t),
        "gradcam": lambda x, t: xaifn.gradcam(net, x, t, layer="conv2"),
        "occlusion": lambda x, t: xaifn.occlusion(net, activation, x, t),
        "rise": lambda x, t: xaifn.rise(net, activation, x, t, masks),
    }


def demo(args):
    """Explain `args.images` images of a seeded LeNet5 with every method; save maps as .npy."""
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ms.set_seed(args.seed)
    net = LeNet5(10, num_channel=3)
    rng = np.random.default_rng(args.seed)
    images = ms.Tensor(rng.random((args.images, 3, 32, 32)), ms.float32)
    targets = ms.Tensor(net(images).argmax(axis=1).astype(ms.int32))
    print(f"explaining {args.images} images of a LeNet5 (predicted classes {targets.asnumpy().tolist()})")
    print(f"{'method':<16} {'seconds':>8} {'min':>10} {'max':>10}")
    for name, explain in _methods(net, nn.Softmax(), args.masks).items():
        start = time.perf_counter()
        saliency = explain(images, targets).asnumpy()
        seconds = time.perf_counter() - start
        np.save(out / f"{name}.npy", saliency)
        print(f"{name:<16} {seconds:8.2f} {saliency.min():10.3g} {saliency.max():10.3g}")
    print(f"maps saved in {out.resolve()}")
    return 0


def main(argv=None):
    """Entry point of `python -m xaifn` and the `xaifn` console script."""
    parser = argparse.ArgumentParser(prog="xaifn", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", help="explain a small network with every method")
    run.add_argument("--output", default="xaifn-demo", help="output folder (default xaifn-demo/)")
    run.add_argument("--images", type=int, default=4, help="number of images (default 4)")
    run.add_argument("--masks", type=int, default=1000, help="RISE masks (default 1000)")
    run.add_argument("--seed", type=int, default=0, help="seed of weights and images (default 0)")
    args = parser.parse_args(argv)
    return demo(args)


if __name__ == "__main__":
    sys.exit(main())
