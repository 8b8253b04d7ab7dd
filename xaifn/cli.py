"""The `xaifn` command line (also `python -m xaifn ...`).

    xaifn demo               train a small classifier on synthetic shapes and explain it
    xaifn explain            explain your own network on image files
    xaifn explain-dataset    explain an image folder into a resumable store (under msrun: per worker)
    xaifn report STORE       HTML and Markdown report of a store
"""
import argparse
import ast
import hashlib
import importlib
import importlib.util
import pathlib
import re
import sys

import numpy as np

from xaifn.demo import METHODS

#: Errors reported as one line and exit status 2, without a traceback.
_USER_ERRORS = (FileNotFoundError, ImportError, AttributeError, TypeError, ValueError, RuntimeError)
#: The options behind the library's argument names, as errors of `explain` and `explain-dataset` name them.
_FLAGS = {"num_masks": "--masks", "window": "--window", "stride": "--stride", "layer": "--layer",
          "dataset": "--data", "store": "--out", "batch_size": "--batch-size", "block_rows": "--block-rows"}
#: The largest image side --size accepts (a resize beyond it would not fit in memory).
MAX_SIDE = 16384

#: Names accepted by --methods (the demo's table of methods).
METHOD_NAMES = METHODS

#: --preset: input size (H, W) and per-channel mean / std of the normalisation x = (v / 255 - mean) / std.
PRESETS = {
    "demo": dict(size=(32, 32), mean=(0.5,), std=(0.25,)),
    "imagenet": dict(size=(224, 224), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "cifar10": dict(size=(32, 32), mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
}


# ------------------------------------------------------------------------------------------------
# the network
# ------------------------------------------------------------------------------------------------

def load_factory(spec):
    """The callable named by 'package.module:name' or 'path/to/file.py:name'.

    A file is imported with its own folder first on sys.path (so it can import its neighbours),
    from any working directory; a module name is looked up from the working directory too, as
    `python -m` does, also through the `xaifn` console script.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"--model must look like 'module:factory' or 'file.py:factory', got {spec!r}.")
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        path = pathlib.Path(where).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"--model file {where!r} does not exist.")
        module = _import(str(path.parent), lambda: _exec_file(path), spec)
    else:
        module = _import(str(pathlib.Path.cwd()), lambda: importlib.import_module(where), spec)
    if not hasattr(module, name):
        raise AttributeError(f"--model: {where!r} has no attribute {name!r}.")
    return getattr(module, name)


def _exec_file(path):
    module_name = f"xaifn_model_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return module


def _import(folder, load, spec):
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        return load()
    except ImportError as error:
        raise ImportError(f"--model {spec!r}: {error} (imported with {folder!r} first on the path).") from None


def parse_model_args(pairs):
    """{key: value} from ['KEY=VALUE', ...]; values are Python literals (3, 0.5, 'a', [1, 2])
    or else plain strings."""
    kwargs = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"--model-arg must look like KEY=VALUE with KEY a Python name, got {pair!r}.")
        try:
            kwargs[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = text
    return kwargs


def load_network(model, checkpoint, model_args=None):
    """Build the network from its factory (with `model_args`) and load every Parameter from the
    checkpoint."""
    import mindspore as ms  # pylint: disable=import-outside-toplevel
    factory = load_factory(model)
    kwargs = model_args or {}
    try:
        net = factory(**kwargs)
    except TypeError as error:
        if not kwargs:
            raise
        raise TypeError(f"--model-arg {', '.join(kwargs)}: the factory {model!r} refused them ({error}).") from None
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


def check_input_shape(net, shape):
    """The number of classes of `net` on (1,) + shape inputs; a ValueError naming --size /
    --channels (not a MindSpore trace) when the network cannot run on them."""
    import mindspore as ms  # pylint: disable=import-outside-toplevel
    channels, height, width = shape
    try:
        out = net(ms.Tensor(np.zeros((1,) + tuple(shape), np.float32)))
    except Exception as error:  # MindSpore raises RuntimeError, ValueError, TypeError for shapes
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"--size {height} {width} with --channels {channels}: the network cannot run on "
                         f"inputs of shape (N, {channels}, {height}, {width}) ({first}). Give the size and the "
                         "channels it was trained on, e.g. --preset imagenet for 224 x 224.") from None
    if not hasattr(out, "shape") or len(out.shape) != 2:
        raise ValueError(f"--model: the network must return logits (N, L), got "
                         f"{getattr(out, 'shape', type(out).__name__)}.")
    return int(out.shape[1])


# ------------------------------------------------------------------------------------------------
# images
# ------------------------------------------------------------------------------------------------

def preprocessing(preset, size, mean, std, channels):
    """((H, W), mean, std, description): --preset values overridden by --size/--mean/--std."""
    base = PRESETS[preset]
    size = base["size"] if size is None else tuple(size)
    mean = base["mean"] if mean is None else tuple(mean)
    std = base["std"] if std is None else tuple(std)
    if len(size) not in (1, 2) or min(size) < 1 or max(size) > MAX_SIDE:
        raise ValueError(f"--size must be one or two positive ints (H [W]) of at most {MAX_SIDE}, got "
                         f"{' '.join(map(str, size))}.")
    size = (size[0], size[-1])
    for values, name in ((mean, "--mean"), (std, "--std")):
        if len(values) not in (1, channels):
            raise ValueError(f"{name} must give 1 or {channels} values (one per channel, --channels "
                             f"{channels}), got {len(values)}.")
    if 0 in std:
        raise ValueError(f"--std must be non-zero, got {' '.join(map(str, std))}.")
    text = (f"resize to {size[0]} x {size[1]}, {channels} channel(s), mean {', '.join(map(str, mean))}, "
            f"std {', '.join(map(str, std))} (preset {preset}, overridden by --size/--mean/--std where given)")
    return size, mean, std, text


def load_images(paths, size, mean, std, channels=3):
    """(float32 (N, C, H, W) inputs, list of uint8 (H0, W0, 3) pictures at their own size, notes)."""
    from xaifn.dataset_runner import read_image, to_input  # pylint: disable=import-outside-toplevel
    pictures, notes = [], []
    for path in paths:
        picture, note = read_image(path, channels)
        pictures.append(picture)
        notes += [note] if note else []
    values = np.stack([to_input(p, size, mean, std, channels) for p in pictures])
    return values, pictures, notes


def labelled_overlay(picture, saliency, text):
    """PIL image: `saliency` (h, w) resampled to the picture's own size, overlaid, captioned."""
    from xaifn import visual  # pylint: disable=import-outside-toplevel
    heat = visual.resize_map(saliency, picture.shape[:2])
    return visual.captioned(visual.overlay(picture[None], heat[None, None])[0, 0], text)


# ------------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------------

def parse_methods(text):
    """Method names from 'a,b' or 'a, b'; ValueError for unknown or missing names."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise ValueError(f"--methods: give one or more of {', '.join(METHOD_NAMES)}, got {text!r}.")
    unknown = [m for m in methods if m not in METHOD_NAMES]
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHOD_NAMES)}.")
    return list(dict.fromkeys(methods))


def parse_metrics(text):
    """Metric names from 'a,b' or 'a, b' (none for ''); ValueError for unknown names. An image
    folder has no ground-truth regions, so the localisation metrics are not offered."""
    from xaifn.dataset_runner import MASK_METRICS, METRIC_NAMES  # pylint: disable=import-outside-toplevel
    names = [m.strip() for m in text.split(",") if m.strip()]
    offered = [m for m in METRIC_NAMES if m not in MASK_METRICS]
    unknown = [m for m in names if m not in offered]
    if unknown:
        raise ValueError(f"--metrics: unknown metric(s) {', '.join(unknown)}; choose from {', '.join(offered)}.")
    return list(dict.fromkeys(names))


def chunk_value(text):
    """--chunk as given: an int when it reads as one, else the text (the methods check it)."""
    try:
        return int(text)
    except ValueError:
        return text


def method_options(net, methods, args):
    """The options of the named methods (see `xaifn.dataset_runner.METHOD_OPTIONS`) from the arguments."""
    import xaifn  # pylint: disable=import-outside-toplevel
    from xaifn import ood  # pylint: disable=import-outside-toplevel
    if "rise_plus" in methods and not args.ood_checkpoint:
        raise ValueError("--methods rise_plus needs --ood-checkpoint (an OoD head saved by xaifn.ood.save).")
    inlier = None
    if args.ood_checkpoint:
        inlier = ood.inlier_fn(ood.load(args.ood_checkpoint), xaifn.network_view(net, output_features=True))
    pair = lambda v: None if v is None else (v[0], v[-1])  # noqa: E731
    return dict(layer=args.layer, num_masks=args.masks, seed=args.seed, window=pair(args.window),
                stride=pair(args.stride), chunk=args.chunk, inlier=inlier)


def method_functions(net, methods, args, size):
    """name -> (inputs, targets) -> maps, for the chosen methods, configured by the arguments."""
    import xaifn  # pylint: disable=import-outside-toplevel
    from xaifn import demo  # pylint: disable=import-outside-toplevel
    opts = method_options(net, methods, args)
    table = demo.explainers(net, activation_cell(args.activation), opts["inlier"],
                            xaifn.RiseMasks(opts["seed"], opts["num_masks"], tuple(size)), layer=opts["layer"],
                            window=opts["window"], stride=opts["stride"], chunk=opts["chunk"])
    return {name: table[name] for name in methods}


def activation_cell(name):
    """The activation Cell named by --activation."""
    from mindspore import nn  # pylint: disable=import-outside-toplevel
    return nn.Softmax() if name == "softmax" else nn.Sigmoid()


def explain(args):
    """Run the chosen methods on the images; write labelled overlays (.png) at each image's own
    size and the raw maps (.npy) at the network's input size; print each prediction."""
    import mindspore as ms  # pylint: disable=import-outside-toplevel

    methods = parse_methods(args.methods)
    net = load_network(args.model, args.checkpoint, parse_model_args(args.model_arg))
    size, mean, std, text = preprocessing(args.preset, args.size, args.mean, args.std, args.channels)
    print(f"preprocessing: {text}")
    values, pictures, notes = load_images(args.images, size, mean, std, args.channels)
    for note in notes:
        print(note)
    num_classes = check_input_shape(net, values.shape[1:])
    if args.target is not None and not 0 <= args.target < num_classes:
        raise ValueError(f"--target {args.target} is out of range: the network has {num_classes} classes "
                         f"(0 to {num_classes - 1}).")
    run = method_functions(net, methods, args, size)
    x = ms.Tensor(values)
    probabilities = activation_cell(args.activation)(net(x)).asnumpy()
    predictions = probabilities.argmax(axis=1)
    targets = predictions if args.target is None else np.full(len(predictions), args.target)
    for path, p, t, probs in zip(args.images, predictions, targets, probabilities):
        print(f"{path}: predicted class {p} ({args.activation} {probs[p]:.3f}); explaining class {t} "
              f"({probs[t]:.3f})")
    out = pathlib.Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for method in methods:
        maps = run[method](x, ms.Tensor(targets.astype(np.int32))).asnumpy()
        for i, path in enumerate(args.images):
            stem = pathlib.Path(path).stem
            np.save(out / f"{stem}_{method}.npy", maps[i])
            caption = f"{method} | target {targets[i]} | predicted {predictions[i]}"
            labelled_overlay(pictures[i], maps[i].mean(axis=0), caption).save(out / f"{stem}_{method}.png")
        print(f"{method}: {len(args.images)} map(s) written to {out}")
    return 0


def explain_dataset(args):
    """Explain every image of a folder into a store (each msrun worker its shard); print the summary."""
    import xaifn  # pylint: disable=import-outside-toplevel
    methods = parse_methods(args.methods)
    net = load_network(args.model, args.checkpoint, parse_model_args(args.model_arg))
    size, mean, std, text = preprocessing(args.preset, args.size, args.mean, args.std, args.channels)
    check_input_shape(net, (args.channels,) + size)
    print(f"preprocessing: {text}")
    if not pathlib.Path(args.data).is_dir():
        raise FileNotFoundError(f"--data {args.data!r} is not a folder.")
    from xaifn.dataset_runner import ImageFiles  # pylint: disable=import-outside-toplevel
    for note in ImageFiles.from_folder(args.data, size, mean, std, args.channels).conversions():
        print(f"{args.data}: {note}")
    options = method_options(net, methods, args)
    config = dict(model=args.model, model_args=parse_model_args(args.model_arg))
    if "rise_plus" in methods:  # the OoD head it reads (a function in method_options: not fingerprinted)
        config["ood_checkpoint"] = hashlib.sha256(pathlib.Path(args.ood_checkpoint).read_bytes()).hexdigest()
    metrics = parse_metrics(args.metrics)
    summary = xaifn.explain_dataset(
        net, args.data, methods, args.out, metrics=metrics, targets=args.targets,
        activation=activation_cell(args.activation),
        method_options=options, size=size, mean=mean, std=std,
        channels=args.channels, batch_size=args.batch_size, block_rows=args.block_rows, config=config,
        progress=None if not args.quiet else False)
    print(f"{summary['rows']} rows in {args.out}" + (f"; accuracy {summary['accuracy']:.3f}"
                                                     if summary["accuracy"] is not None else ""))
    for method, metrics in summary["methods"].items():
        means = [f"{name} {entry['mean']:.4f}" for name, entry in metrics.items() if entry["mean"] is not None]
        if means:
            print(f"  {method}: {', '.join(means)}")
    print(f"report: xaifn report {args.out}")
    return 0


def report(args):
    """Write the HTML and Markdown report of a store."""
    from xaifn.dataset_report import write_report  # pylint: disable=import-outside-toplevel
    output = args.output or str(pathlib.Path(args.store).resolve().parent / "report")
    html_path, md_path = write_report(args.store, output, args.gallery)
    print(f"report: {html_path} and {md_path}")
    return 0


# ------------------------------------------------------------------------------------------------
# argument parsing
# ------------------------------------------------------------------------------------------------

def _add_network_options(parser):
    parser.add_argument("--model", required=True,
                        help="'module:factory' or 'path/to/file.py:factory' returning the Cell")
    parser.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument of the factory (repeatable; VALUE a Python literal or text)")
    parser.add_argument("--checkpoint", required=True, help="the network's .ckpt file")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                        help="input size, mean and std: " + "; ".join(
                            f"{name} {v['size'][0]}x{v['size'][1]} mean {v['mean']} std {v['std']}"
                            for name, v in PRESETS.items()) + " (default demo)")
    parser.add_argument("--size", type=int, nargs="+", default=None, metavar=("H", "W"),
                        help="resize to H [W] (overrides the preset; give the images before such "
                             "options, or end the options with --)")
    parser.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel mean (overrides the preset)")
    parser.add_argument("--std", type=float, nargs="+", default=None, help="per-channel std (overrides the preset)")
    parser.add_argument("--device", choices=("CPU", "GPU", "Ascend"), default=None,
                        help="device to run on (default: MindSpore's)")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3,
                        help="input channels of the network (default 3): images are converted to them, "
                             "and each conversion is reported")


def _add_method_options(parser, default):
    parser.add_argument("--methods", default=default,
                        help=f"comma-separated methods among {', '.join(METHOD_NAMES)} (default {default})")
    parser.add_argument("--layer", default="", help="GradCAM layer name (default: the input)")
    parser.add_argument("--activation", choices=("softmax", "sigmoid"), default="softmax",
                        help="turns logits into probabilities for the perturbation methods (default softmax)")
    parser.add_argument("--masks", type=int, default=2000, help="RISE masks (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the RISE masks")
    parser.add_argument("--window", type=int, nargs="+", default=None, metavar=("H", "W"),
                        help="Occlusion window (default: 3 for sides up to 32, else side // 32)")
    parser.add_argument("--stride", type=int, nargs="+", default=None, metavar=("H", "W"),
                        help="Occlusion stride (default: 1 for sides up to 32, else side // 32)")
    parser.add_argument("--chunk", type=chunk_value, default=None,
                        help="work budget of the perturbation methods per compiled call, handed to them "
                             "unchanged (default: theirs)")
    parser.add_argument("--ood-checkpoint", default=None, help="OoD head (xaifn.ood.save) for rise_plus")


def build_parser():
    """The argparse parser of every command."""
    parser = argparse.ArgumentParser(prog="xaifn", description="Explanations of MindSpore networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo_cmd = commands.add_parser("demo", help="train a small classifier on synthetic shapes and explain it "
                                                 "with every method")
    demo_cmd.add_argument("--output", default="xaifn-demo", help="output folder (default xaifn-demo/)")
    demo_cmd.add_argument("--seed", type=int, default=0)
    demo_cmd.add_argument("--images", type=int, default=8, help="held-out images to explain (default 8)")
    demo_cmd.add_argument("--methods", default=None,
                          help=f"comma-separated subset of {', '.join(METHOD_NAMES)} (default all)")
    demo_cmd.add_argument("--quick", action="store_true", help="a sub-minute run with small settings")

    exp = commands.add_parser("explain", help="explain your own network on image files",
                              description="Explain your own network on image files: overlays at each "
                                          f"image's own size and raw maps. Methods: {', '.join(METHOD_NAMES)}.")
    exp.add_argument("images", nargs="+", help="PNG/JPEG files")
    _add_network_options(exp)
    _add_method_options(exp, "gradient")
    exp.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted one)")
    exp.add_argument("--output", default="xaifn-explain", help="output folder (default xaifn-explain/)")

    data = commands.add_parser("explain-dataset", help="explain an image folder into a resumable store",
                               description="Explain every image of a folder (class sub-folders give the labels) "
                                           "with every method into a zarr store, resumable: run the same command "
                                           "again after an interruption. Under msrun, run it in every worker: "
                                           f"each takes its shard. Methods: {', '.join(METHOD_NAMES)}.")
    data.add_argument("--data", required=True, help="folder of images (in class sub-folders, or not)")
    _add_network_options(data)
    _add_method_options(data, "gradient")
    data.add_argument("--metrics", default="",
                      help="comma-separated scores of every map among deletion, insertion, naive_faithfulness "
                           "(xaifn.metrics; deletion and insertion keep their curves) (default none)")
    data.add_argument("--targets", choices=("prediction", "label"), default="prediction",
                      help="class explained: the predicted one (default) or the folder's label")
    data.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    data.add_argument("--block-rows", type=int, default=None,
                      help="rows per store block, a multiple of --batch-size: the unit written, resumed and shared "
                           "out between workers (default: the batches whose maps make about 4 MiB)")
    data.add_argument("--out", default="xaifn-dataset/store", help="the store folder (default xaifn-dataset/store)")
    data.add_argument("--quiet", action="store_true", help="no progress bar")

    rep = commands.add_parser("report", help="HTML and Markdown report of a store")
    rep.add_argument("store", help="a store written by explain-dataset")
    rep.add_argument("--output", default=None, help="output folder (default: 'report' beside the store)")
    rep.add_argument("--gallery", type=int, default=4, help="best and worst images shown per method (default 4)")
    return parser


def main(argv=None):
    """Entry point of `python -m xaifn` and the `xaifn` console script."""
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "device", None):
            import mindspore as ms  # pylint: disable=import-outside-toplevel
            ms.set_device(args.device)
        if args.command == "demo":
            from xaifn import demo  # pylint: disable=import-outside-toplevel
            methods = demo.METHODS if args.methods is None else tuple(parse_methods(args.methods))
            demo.run(args.output, args.seed, args.images, methods, args.quick)
            return 0
        return {"explain": explain, "explain-dataset": explain_dataset, "report": report}[args.command](args)
    except _USER_ERRORS as error:
        print(f"xaifn {args.command}: error: {in_flags(str(error), args.command)}", file=sys.stderr)
        return 2


def in_flags(message, command):
    """An error message of the library with its argument names (`num_masks`) given as the options
    of `command` that set them (--masks)."""
    if command not in ("explain", "explain-dataset"):
        return message
    return re.sub(r"`(\w+)`", lambda m: _FLAGS.get(m.group(1), m.group(0)), message)
