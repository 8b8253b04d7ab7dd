"""The `xaifn` command line: `xaifn demo` and `xaifn explain` (also `python -m xaifn ...`)."""
import argparse
import importlib
import importlib.util
import pathlib
import sys

import numpy as np

#: Errors reported as one line and exit status 2, without a traceback.
_USER_ERRORS = (FileNotFoundError, ImportError, AttributeError, TypeError, ValueError, RuntimeError)


def load_factory(spec):
    """The callable named by 'package.module:name' or 'path/to/file.py:name'."""
    if ":" not in spec:
        raise ValueError(f"--model must look like 'module:factory' or 'file.py:factory', got {spec!r}.")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        path = pathlib.Path(where)
        if not path.is_file():
            raise FileNotFoundError(f"--model file {where!r} does not exist.")
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    if not hasattr(module, name):
        raise AttributeError(f"--model: {where!r} has no attribute {name!r}.")
    return getattr(module, name)


def load_network(model, checkpoint):
    """Build the network from its factory and load every Parameter from the checkpoint."""
    import mindspore as ms  # pylint: disable=import-outside-toplevel
    net = load_factory(model)()
    if not isinstance(net, ms.nn.Cell):
        raise TypeError(f"--model factory must return a mindspore.nn.Cell, got {type(net).__name__}.")
    if not pathlib.Path(checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint!r} does not exist.")
    try:
        params = ms.load_checkpoint(str(checkpoint))
    except Exception as error:  # MindSpore raises several types for a corrupt file
        raise ValueError(f"--checkpoint {checkpoint!r} is not a readable MindSpore checkpoint ({error}).") from None
    missing, _ = ms.load_param_into_net(net, params)
    if missing:
        raise ValueError(f"--checkpoint {checkpoint!r} does not match the network: missing {', '.join(missing[:5])}.")
    net.set_train(False)
    return net


def load_images(paths, size, mean, std):
    """(float (N, 3, H, W) normalised Tensor input, uint8 (N, H, W, 3) pictures) from image files."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    pictures = []
    for path in paths:
        if not pathlib.Path(path).is_file():
            raise FileNotFoundError(f"image {path!r} does not exist.")
        try:
            with Image.open(path) as image:
                pictures.append(np.asarray(image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)))
        except OSError as error:
            raise ValueError(f"image {path!r} cannot be read ({error}).") from None
    pictures = np.stack(pictures)
    values = (pictures.astype(np.float32) / 255 - np.float32(mean)) / np.float32(std)
    return values.transpose(0, 3, 1, 2), pictures


def explain(args):
    """Run the chosen methods on the images and write overlays (.png) and raw maps (.npy)."""
    import mindspore as ms  # pylint: disable=import-outside-toplevel
    from mindspore import nn  # pylint: disable=import-outside-toplevel
    import xaifn  # pylint: disable=import-outside-toplevel
    from xaifn import demo, ood, visual  # pylint: disable=import-outside-toplevel

    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in demo.METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {', '.join(unknown)}; choose from {', '.join(demo.METHODS)}.")
    if "rise_plus" in methods and not args.ood_checkpoint:
        raise ValueError("--methods rise_plus needs --ood-checkpoint (an OoD head saved by xaifn.ood.save).")
    net = load_network(args.model, args.checkpoint)
    values, pictures = load_images(args.images, (args.size[0], args.size[-1]), args.mean, args.std)
    x = ms.Tensor(values)
    targets = args.target if args.target is not None else ms.Tensor(net(x).argmax(axis=1).astype(ms.int32))
    inlier = None
    if args.ood_checkpoint:
        inlier = ood.inlier_fn(ood.load(args.ood_checkpoint), xaifn.network_view(net, output_features=True))
    activation = nn.Softmax() if args.activation == "softmax" else nn.Sigmoid()
    masks = xaifn.RiseMasks(args.seed, args.masks, tuple(x.shape[2:]))
    run = demo.explainers(net, activation, inlier, masks, layer=args.layer)
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for method in methods:
        maps = run[method](x, targets).asnumpy()
        overlays = visual.overlay(pictures, maps)
        for i, path in enumerate(args.images):
            stem = pathlib.Path(path).stem
            np.save(out / f"{stem}_{method}.npy", maps[i])
            visual.to_pil(overlays[i, 0]).save(out / f"{stem}_{method}.png")
        print(f"{method}: {len(args.images)} map(s) written to {out}")
    return 0


def main(argv=None):
    """Entry point of `python -m xaifn` and the `xaifn` console script."""
    parser = argparse.ArgumentParser(prog="xaifn", description="Explanations of MindSpore networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_cmd = commands.add_parser("demo", help="train a small classifier on synthetic shapes and explain it "
                                                 "with every method")
    demo_cmd.add_argument("--output", default="xaifn-demo", help="output folder (default xaifn-demo/)")
    demo_cmd.add_argument("--seed", type=int, default=0)
    demo_cmd.add_argument("--images", type=int, default=8, help="held-out images to explain (default 8)")
    demo_cmd.add_argument("--methods", default=None, help="comma-separated subset of the methods")
    demo_cmd.add_argument("--quick", action="store_true", help="a sub-minute run with small settings")

    exp = commands.add_parser("explain", help="explain your own network on image files")
    exp.add_argument("--model", required=True, help="'module:factory' or 'file.py:factory' returning the Cell")
    exp.add_argument("--checkpoint", required=True, help="the network's .ckpt file")
    exp.add_argument("images", nargs="+", help="PNG/JPEG files")
    exp.add_argument("--methods", default="gradient", help="comma-separated methods (default gradient)")
    exp.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted one)")
    exp.add_argument("--layer", default="", help="GradCAM layer name (default: the input)")
    exp.add_argument("--size", type=int, nargs="+", default=[32], help="resize to H [W] (default 32)")
    exp.add_argument("--mean", type=float, nargs="+", default=[0.5], help="per-channel mean (default 0.5)")
    exp.add_argument("--std", type=float, nargs="+", default=[0.25], help="per-channel std (default 0.25)")
    exp.add_argument("--activation", choices=("softmax", "sigmoid"), default="softmax")
    exp.add_argument("--masks", type=int, default=2000, help="RISE masks (default 2000)")
    exp.add_argument("--seed", type=int, default=0, help="seed of the RISE masks")
    exp.add_argument("--ood-checkpoint", default=None, help="OoD head (xaifn.ood.save) for rise_plus")
    exp.add_argument("--output", default="xaifn-explain", help="output folder (default xaifn-explain/)")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            from xaifn import demo  # pylint: disable=import-outside-toplevel
            methods = demo.METHODS if args.methods is None else tuple(args.methods.split(","))
            demo.run(args.output, args.seed, args.images, methods, args.quick)
            return 0
        return explain(args)
    except _USER_ERRORS as error:
        print(f"xaifn {args.command}: error: {error}", file=sys.stderr)
        return 2
