"""Explaining a whole dataset: `explain_dataset` streams batches through the methods into a store.

The dataset is an image folder or a `mindspore.dataset` pipeline; each batch is explained by every
method and scored by every metric; the batches of a block (`block_rows` rows, whole batches) are
written together as one block of rows of the zarr store (`xaifn.dataset_store`) by a writer thread
while the next block is computed, so memory does not grow with the dataset. The run is resumable
and exact: started again with the same arguments it skips the blocks already done and writes the
others, and the final store equals that of an uninterrupted run, bit for bit.

Under `msrun` each worker takes its shard: with S workers, worker s explains blocks b = s, s + S,
s + 2S, ..., so workers write disjoint chunks of the store. The summary (mean score per method,
metric and class) is reduced across workers with MindSpore's `AllReduce` and equals a
single-process run exactly (sums are carried as exact partial sums).
"""
import collections
import concurrent.futures
import copy
import hashlib
import json
import math
import os
import pathlib
import sys
import time

import numpy as np
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn, ops
from tqdm import tqdm

from xaifn import _cache, _checks, dataset_store, demo, visual
from xaifn import metrics as metrics_lib
from xaifn.masks import RiseMasks

#: Image files recognised in a folder.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
#: Metrics given by name (`xaifn.metrics` with their defaults); the last two need the dataset's masks.
METRIC_NAMES = ("deletion", "insertion", "naive_faithfulness", "pointing_game", "iosr")
MASK_METRICS = ("pointing_game", "iosr")
#: Named metrics whose smaller scores are better: the original's deletion score 1 - auc / 2 falls
#: as a map finds the evidence faster (`xaifn.metrics.faithfulness`).
LOWER_IS_BETTER = ("deletion",)
#: Keys of `method_options` (for methods given by name) and their defaults.
METHOD_OPTIONS = dict(layer="", num_masks=2000, seed=0, window=None, stride=None, chunk=None, inlier=None)
_CAMS = ("gradcam", "guided_gradcam", "gradcam_plus_plus", "xgradcam", "layercam", "hirescam", "eigencam", "scorecam")
#: The keys of `METHOD_OPTIONS` that each named method and metric reads (the others read none).
#: Only these enter the store's fingerprint: an option that no chosen method reads cannot change
#: the results, so it does not refuse a store.
OPTIONS_READ = dict(**{name: ("layer",) for name in _CAMS}, occlusion=("window", "stride", "chunk"),
                    rise=("num_masks", "seed", "chunk"), rise_plus=("num_masks", "seed", "chunk", "inlier"),
                    deletion=("chunk",), insertion=("chunk",), naive_faithfulness=("chunk",))
#: Default size of a block: the whole batches whose maps of one method make about this many bytes.
BLOCK_BYTES = 4 << 20


# ------------------------------------------------------------------------------------------------
# images and folders
# ------------------------------------------------------------------------------------------------

def read_image(path, channels):
    """(uint8 (H, W, 3) picture, note or None): the image file as RGB, and what was converted."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"image {str(path)!r} does not exist.")
    try:
        with Image.open(path) as image:
            mode = image.mode
            picture = np.asarray(image.convert("RGB"))
    except OSError as error:
        raise ValueError(f"image {str(path)!r} cannot be read ({error}).") from None
    note = None
    if mode in _GRAY_MODES and channels == 3:
        note = f"{path}: grayscale image ({mode}), its one channel repeated to 3 (--channels 3)"
    elif mode not in _GRAY_MODES and channels == 1:
        note = f"{path}: colour image ({mode}) converted to grayscale (--channels 1)"
    return picture, note


def to_input(picture, size, mean, std, channels):
    """float32 (C, H, W) network input from a uint8 (H0, W0, 3) picture: resize, normalise."""
    from PIL import Image  # pylint: disable=import-outside-toplevel
    image = Image.fromarray(picture).resize((size[1], size[0]), Image.BILINEAR)
    if channels == 1:
        image = image.convert("L")
    values = np.asarray(image, np.float32).reshape(size[0], size[1], channels) / 255
    values = (values - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return values.transpose(2, 0, 1).astype(np.float32)


class ImageFiles:
    """Random-access source of (image (C, H, W) float32, label int64) from image files.

    `ImageFiles.from_folder(folder, ...)`: the files under `folder` sorted by path; when they sit
    in sub-folders, each sub-folder is a class (label = its index among the sorted sub-folder
    names, as ImageNet's layout), otherwise the label is -1.
    """

    def __init__(self, files, labels, size, mean, std, channels=3, class_names=None):
        self.files, self.labels = list(files), np.asarray(labels, np.int64)
        self.size, self.mean, self.std, self.channels = tuple(size), tuple(mean), tuple(std), channels
        self.class_names = class_names

    @classmethod
    def from_folder(cls, folder, size, mean, std, channels=3):
        """The image files under `folder` (see the class docstring)."""
        root = pathlib.Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"`dataset` folder {str(folder)!r} does not exist.")
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"`dataset` folder {str(folder)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        classes = sorted({p.parent.relative_to(root).parts[0] for p in files if p.parent != root})
        if classes and any(p.parent == root for p in files):
            raise ValueError(f"`dataset` folder {str(folder)!r} mixes images in class sub-folders with images at "
                             "its top level; put every image in a class folder, or none.")
        labels = [classes.index(p.relative_to(root).parts[0]) if classes else -1 for p in files]
        return cls(files, labels, size, mean, std, channels, classes or None)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        picture, _ = read_image(self.files[index], self.channels)
        return to_input(picture, self.size, self.mean, self.std, self.channels), self.labels[index]

    def conversions(self):
        """Notes on the files converted to the network's channels (headers only are read)."""
        from PIL import Image  # pylint: disable=import-outside-toplevel
        gray = 0
        for path in self.files:
            with Image.open(path) as image:
                gray += image.mode in _GRAY_MODES
        if self.channels == 3 and gray:
            return [f"{gray} grayscale image(s): their one channel repeated to 3"]
        if self.channels == 1 and gray < len(self.files):
            return [f"{len(self.files) - gray} colour image(s) converted to grayscale"]
        return []

    def description(self, root):
        """JSON-able identity of the files and their preprocessing (for fingerprints)."""
        listing = "".join(f"{p.relative_to(root)}\t{p.stat().st_size}\n" for p in self.files)
        return dict(folder=str(pathlib.Path(root).resolve()), files=hashlib.sha256(listing.encode()).hexdigest(),
                    size=list(self.size), mean=list(self.mean), std=list(self.std), channels=self.channels)


def image_folder(folder, size, mean, std, channels=3, batch_size=16):
    """A `mindspore.dataset` pipeline of (image, label) batches over `ImageFiles.from_folder`."""
    source = ImageFiles.from_folder(folder, size, mean, std, channels)
    pipeline = ds.GeneratorDataset(source, column_names=["image", "label"], shuffle=False,
                                   num_parallel_workers=1, python_multiprocessing=False)
    return pipeline.batch(batch_size, drop_remainder=False), source


# ------------------------------------------------------------------------------------------------
# several workers
# ------------------------------------------------------------------------------------------------

def shard_of(num_shards=None, shard_id=None):
    """(number of workers, this worker's rank): given, else from `mindspore.communication` when
    running under msrun (initialised here if needed), else (1, 0)."""
    if num_shards is not None or shard_id is not None:
        if num_shards is None or shard_id is None:
            raise ValueError("`num_shards` and `shard_id` must be given together.")
        for value, name in ((num_shards, "num_shards"), (shard_id, "shard_id")):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"`{name}` must be an int, got {type(value).__name__}.")
        if num_shards < 1 or not 0 <= shard_id < num_shards:
            raise ValueError(f"`shard_id` must lie in [0, num_shards), got shard_id {shard_id} of {num_shards}.")
        return num_shards, shard_id
    if int(os.environ.get("MS_WORKER_NUM", "1")) <= 1:
        return 1, 0
    from mindspore import communication  # pylint: disable=import-outside-toplevel
    if not _communicating():
        communication.init()
    return communication.get_group_size(), communication.get_rank()


def _all_sum(values, workers):
    """Sum of float32 `values` over the workers (MindSpore AllReduce); values itself for one."""
    if workers == 1:
        return values
    return ops.AllReduce()(ms.Tensor(values, ms.float32)).asnumpy()


def exact_partials(values):
    """Non-overlapping float64 partials whose exact sum is the exact sum of `values` (Shewchuk)."""
    partials = []
    for x in values:
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            high = x + y
            low = y - (high - x)
            if low:
                partials[i] = low
                i += 1
            x = high
        partials[i:] = [x]
    return partials


def _split32(value):
    """Three float32 whose float64 sum is exactly `value` (a float64 of normal float32 range)."""
    high = np.float32(value)
    middle = np.float32(value - np.float64(high))
    return high, middle, np.float32(value - np.float64(high) - np.float64(middle))


def reduce_sums(groups, workers, rank):
    """{key: (exact sum, count)} over every worker, for `groups` {key: list of float64 values}.

    Every worker must pass the same keys. Each worker's values become exact partial sums, carried
    bit for bit through float32 AllReduce slots (each worker fills only its own slot; adding zeros
    is exact), so the totals are the correctly rounded sums of all values, whatever the split of
    rows between workers.
    """
    keys = sorted(groups)
    partials = [exact_partials(groups[k]) for k in keys]
    width = _all_reduce_max(max([len(p) for p in partials] + [1]), workers, rank)
    slots = np.zeros((workers, len(keys), width * 3 + 1), np.float32)
    for j, (key, parts) in enumerate(zip(keys, partials)):
        slots[rank, j, :len(parts) * 3] = np.ravel([_split32(p) for p in parts]) if parts else []
        slots[rank, j, -1] = len(groups[key])
    slots = _all_sum(slots, workers)
    return {key: (math.fsum(slots[:, j, :-1].astype(np.float64).ravel()), int(slots[:, j, -1].sum()))
            for j, key in enumerate(keys)}


def _all_reduce_max(value, workers, rank):
    """Largest `value` (an int below 2**24) over the workers (AllReduce sums only, on CPU: each
    worker fills its own slot)."""
    slots = np.zeros(workers, np.float32)
    slots[rank] = value
    return int(_all_sum(slots, workers).max())


# ------------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------------

def _leaf(pipeline):
    node = pipeline
    while node.children:
        if len(node.children) != 1:
            raise ValueError("`dataset` must be a pipeline over one source (no zip or concat).")
        node = node.children[0]
    if not hasattr(node, "use_sampler"):
        raise ValueError(f"`dataset`'s source {type(node).__name__} must be random-access (a mappable "
                         "mindspore.dataset source, e.g. NumpySlicesDataset, ImageFolderDataset, "
                         "GeneratorDataset over an object with __getitem__).")
    return node


def _check_pipeline(pipeline):
    """(source dataset, number of rows N, rows per batch B) of a deterministic pipeline."""
    if not isinstance(pipeline, ds.Dataset):
        raise TypeError(f"`dataset` must be a mindspore.dataset pipeline or an image folder path, "
                        f"got {type(pipeline).__name__}.")
    leaf = _leaf(pipeline)
    if pipeline.is_shuffled():
        raise ValueError("`dataset` must not shuffle (shuffle=False): rows are stored in dataset order.")
    if pipeline.is_sharded():
        raise ValueError("`dataset` must not be sharded: explain_dataset shards it itself (num_shards, shard_id).")
    rows, batch = leaf.get_dataset_size(), pipeline.get_batch_size()
    if pipeline.get_dataset_size() != math.ceil(rows / batch):
        raise ValueError(f"`dataset` must map its {rows} source rows one to one into batches of {batch} "
                         f"(batch(..., drop_remainder=False), no filter or repeat); it gives "
                         f"{pipeline.get_dataset_size()} batches.")
    return leaf, rows, batch


def _columns(batch):
    """(images, labels, masks) from a batch of 1 to 3 columns."""
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"`dataset` must yield (image[, label[, mask]]) batches, got {len(batch)} columns.")
    images = np.asarray(batch[0], np.float32)
    if images.ndim != 4:
        raise ValueError(f"`dataset` images must be batches (N, C, H, W), got shape {images.shape}.")
    labels = np.asarray(batch[1], np.int64).reshape(-1) if len(batch) > 1 else np.full(len(images), -1)
    masks = np.asarray(batch[2]) if len(batch) > 2 else None
    return images, labels, masks


def _resolve_methods(methods, net, activation, options, image_size):
    """({name: (inputs, targets) -> maps} from names, functions, or a dict of them, {option: value}
    of the options that the named ones read (`OPTIONS_READ`, defaults filled in))."""
    if isinstance(methods, dict):
        items = list(methods.items())
    elif isinstance(methods, (list, tuple)) and methods:
        items = [(m, m) if isinstance(m, str) else (getattr(m, "__name__", None), m) for m in methods]
    else:
        raise TypeError(f"`methods` must be a non-empty list of method names or functions, or a dict "
                        f"name -> function, got {methods!r}.")
    unknown = set(options) - set(METHOD_OPTIONS)
    if unknown:
        raise TypeError(f"`method_options` has unknown key(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(METHOD_OPTIONS)}.")
    opts = dict(METHOD_OPTIONS, **options)
    table = demo.explainers(net, activation, opts["inlier"], RiseMasks(opts["seed"], opts["num_masks"], image_size),
                            layer=opts["layer"], window=opts["window"], stride=opts["stride"], chunk=opts["chunk"])
    resolved, read = {}, set()
    for name, method in items:
        if not _good_name(name):
            raise ValueError(f"`methods`: every method needs a name (no '/', not a lambda; use a dict "
                             f"name -> function), got {name!r}.")
        if isinstance(method, str):
            if method not in table:
                raise ValueError(f"`methods`: unknown method {method!r}; choose from {', '.join(table)}.")
            if method == "rise_plus" and opts["inlier"] is None:
                raise ValueError("`methods`: rise_plus needs method_options['inlier'] (xaifn.ood.inlier_fn).")
            read.update(OPTIONS_READ.get(method, ()))
            method = table[method]
        if not callable(method):
            raise TypeError(f"`methods`[{name!r}] must be a method name or a function, got {type(method).__name__}.")
        resolved[name] = method
    return resolved, {key: opts[key] for key in sorted(read)}


def _good_name(name):
    return isinstance(name, str) and bool(name) and "/" not in name and not name.startswith("<")


def named_metric(name, activation, chunk=None):
    """The metric `name` of `METRIC_NAMES` (from `xaifn.metrics`, with their defaults) as a runner
    metric(net, inputs, targets, maps, masks); deletion and insertion also return their curves."""
    budget = {} if chunk is None else {"chunk": chunk}
    table = {
        "deletion": lambda net, x, t, maps, masks: metrics_lib.deletion_auc(
            net, activation, x, t, maps, return_curve=True, **budget),
        "insertion": lambda net, x, t, maps, masks: metrics_lib.insertion_auc(
            net, activation, x, t, maps, return_curve=True, **budget),
        "naive_faithfulness": lambda net, x, t, maps, masks: metrics_lib.naive_faithfulness(
            net, activation, x, t, maps, **budget),
        "pointing_game": lambda net, x, t, maps, masks: metrics_lib.pointing_game(maps, masks),
        "iosr": lambda net, x, t, maps, masks: metrics_lib.iosr(maps, masks),
    }
    if name not in table:
        raise ValueError(f"`metrics`: unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)}, or give "
                         "a function.")
    metric = table[name]
    metric.lower_is_better = name in LOWER_IS_BETTER
    return metric


def lower_is_better(metric):
    """Whether smaller scores of the runner metric `metric` are better: its `lower_is_better`
    attribute (False when absent: higher is better)."""
    return bool(getattr(metric, "lower_is_better", False))


def _resolve_metrics(metrics, activation, chunk, has_masks):
    """({name: metric}, names of the `METHOD_OPTIONS` that the named ones read): a metric is a name
    of `METRIC_NAMES` or a function metric(net, inputs, targets, maps, masks) -> (N,) scores, or a
    pair ((N,) scores, (N, P) curves)."""
    if metrics is None:
        return {}, set()
    if isinstance(metrics, dict):
        items = list(metrics.items())
    elif isinstance(metrics, (list, tuple)):
        items = [(m, m) if isinstance(m, str) else (getattr(m, "__name__", None), m) for m in metrics]
    else:
        raise TypeError(f"`metrics` must be None, a list of metric names or functions, or a dict name -> "
                        f"function, got {metrics!r}.")
    out, read = {}, set()
    for name, metric in items:
        if isinstance(metric, str):
            read.update(OPTIONS_READ.get(metric, ()))
            if metric in MASK_METRICS and not has_masks:
                raise ValueError(f"`metrics`: {metric} needs ground-truth regions: a dataset of (image, label, "
                                 "mask) batches.")
            metric = named_metric(metric, activation, chunk)
        if not _good_name(name) or not callable(metric):
            raise TypeError(f"`metrics`: every metric must be a function with a name (no '/', not a lambda; "
                            f"use a dict name -> function), got {name!r}.")
        out[name] = metric
    return out, read


def network_digest(net):
    """sha256 over the network's Parameters (names, shapes, values): the weights' identity."""
    digest = hashlib.sha256()
    for param in sorted(net.get_parameters(), key=lambda p: p.name):
        value = param.asnumpy()
        digest.update(f"{param.name}{value.shape}{value.dtype}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def explain_dataset(net, dataset, methods, store, *, metrics=None, targets="prediction", activation=None,
                    method_options=None, size=None, mean=None, std=None, channels=3, batch_size=16,
                    block_rows=None, config=None, num_shards=None, shard_id=None, progress=None):
    """Explain every sample of `dataset` with every method into the zarr store at `store`.

    Args:
        net: the `nn.Cell` classifier (explained through an eval-mode view; never modified).
        dataset: a folder of images (see `ImageFiles.from_folder`; `size`, `mean`, `std`,
            `channels`, `batch_size` say how to read it), or a `mindspore.dataset` pipeline of
            (image, label[, mask]) batches over one random-access source, unshuffled and unsharded
            (explain_dataset shards it); `mean`/`std`, when given, de-normalise its pictures.
        methods: method names (`xaifn.demo.METHODS`, configured by `method_options`: layer,
            num_masks, seed, window, stride, chunk, inlier), functions (inputs, targets) ->
            (N, 1, H, W) maps named by their __name__, or a dict name -> name or function.
        store: folder of the zarr store (`xaifn.dataset_store`): created, or resumed when it was
            made with the same arguments; a store made with other arguments is refused.
        metrics: None, a list of metric names (`METRIC_NAMES`: deletion, insertion,
            naive_faithfulness from `xaifn.metrics` with the activation and chunk above; pointing_game,
            iosr against the dataset's masks) or functions, or a dict name -> name or function
            metric(net, inputs, targets, maps, masks) -> (N,) scores, or (scores, (N, P) curves);
            `masks` is the dataset's third column or None. Higher scores are taken as better (the
            report's ranking) unless the function has ``lower_is_better = True``, as "deletion" has.
        targets: "prediction" (explain the predicted class) or "label".
        activation: logits -> probabilities Cell (default `nn.Softmax()`).
        block_rows: rows per block of the store, a multiple of the batch size: the unit that is
            written (one file per array), resumed and shared out between workers. Default: the
            whole batches whose maps of one method make about 4 MiB (`BLOCK_BYTES`; at least one
            batch). Larger blocks write fewer files; a killed run redoes at most one block per worker.
        config: extra JSON-able facts that determine the results (part of the fingerprint; the
            method options enter it only where a chosen method or metric reads them, and functions
            such as method_options['inlier'] only through what `config` says of them).
        num_shards, shard_id: this worker's shard; default from `mindspore.communication` under
            msrun, else one worker.
        progress: True / False, or None for a tqdm bar only when stderr is a terminal.

    Returns:
        The summary dict (also in the store's attrs): number of rows, accuracy where labels are
        known, and per method and metric the mean score over finite scores, overall and per class
        explained.

    Example:
        >>> import tempfile, numpy as np, mindspore.dataset as ds, xaifn
        >>> from xaifn.models import LeNet5
        >>> images = np.random.default_rng(0).random((6, 3, 32, 32), np.float32)
        >>> data = ds.NumpySlicesDataset((images, np.arange(6) % 3), shuffle=False).batch(4)
        >>> mean_map = lambda net, x, t, maps, masks: maps.reshape(len(maps), -1).mean(axis=1)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     summary = xaifn.explain_dataset(LeNet5(), data, ["gradient"], folder + "/store",
        ...                                     metrics={"mean": mean_map})
        >>> summary["rows"], sorted(summary["methods"]["gradient"])
        (6, ['mean'])
    """
    workers, rank = shard_of(num_shards, shard_id)
    if targets not in ("prediction", "label"):
        raise ValueError(f"`targets` must be 'prediction' or 'label', got {targets!r}.")
    activation = nn.Softmax() if activation is None else activation
    if isinstance(dataset, (str, os.PathLike)):
        _checks.check_positive_int(batch_size, "batch_size")
        if channels not in (1, 3):
            raise ValueError(f"`channels` must be 1 or 3, got {channels!r}.")
        if size is None:
            raise ValueError("`size` (the network's input size) is needed to read an image folder.")
        pipeline, source = image_folder(dataset, (size, size) if isinstance(size, int) else size,
                                        (0.0,) if mean is None else mean, (1.0,) if std is None else std,
                                        channels, batch_size)
        description, class_names = source.description(dataset), source.class_names
    else:
        pipeline, description, class_names = dataset, None, None
    leaf, num_rows, batch = _check_pipeline(pipeline)
    first, _, first_masks = _columns(next(_reading(pipeline, range(min(batch, num_rows))).create_tuple_iterator(
        num_epochs=1, output_numpy=True)))
    block = _block_rows(block_rows, batch, first.shape[2:], num_rows)
    metric_fns, metric_reads = _resolve_metrics(metrics, activation, (method_options or {}).get("chunk"),
                                                first_masks is not None)
    if description is None:
        description = dict(pipeline=type(pipeline).__name__, source=type(leaf).__name__,
                           first_batch=hashlib.sha256(first.tobytes()).hexdigest())
    probabilities, known = probability_kernel(net, activation), {}
    fns, options_read = _resolve_methods(methods, net, activation, dict(method_options or {}), first.shape[2:])
    options_read.update((key, dict(METHOD_OPTIONS, **(method_options or {}))[key]) for key in metric_reads)
    run_config = dict(format=dataset_store.FORMAT, methods=list(fns), metrics=list(metric_fns), targets=targets,
                      rows=num_rows, batch=batch, block=block, input=list(first.shape[1:]),
                      network=network_digest(net), dataset=description, activation=type(activation).__name__,
                      method_options=_jsonable({k: v for k, v in options_read.items() if k != "inlier"}),
                      picture=dict(mean=_jsonable(mean), std=_jsonable(std)), config=_jsonable(config or {}))

    def layout():  # when the store is created: the first batch's probabilities give the number of classes
        known[0] = probabilities(ms.Tensor(first)).asnumpy()  # and are used again for that batch
        return dict(num_rows=num_rows, block=block, map_shape=first.shape[2:], methods=list(fns),
                    metrics=list(metric_fns), num_classes=_checks.check_output_width(known[0].shape, "net"),
                    lower_is_better=[name for name, fn in metric_fns.items() if lower_is_better(fn)],
                    class_names=class_names)
    started = time.time()
    group = dataset_store.open_store(store, run_config, layout)
    blocks = range(math.ceil(num_rows / block))
    mine = [b for b in blocks if b % workers == rank]
    todo = [b for b, done in zip(mine, dataset_store.done_blocks(group)[mine]) if not done]
    if todo:
        dataset_store.remove_partials(group, todo)  # of this worker's killed writes, about to be redone
        def rows_of(some):
            return sum(min(block, num_rows - b * block) for b in some)
        _run_blocks(pipeline, todo, block, batch, num_rows, group,
                    dict(probabilities=probabilities, known=known, net=net, methods=fns, metrics=metric_fns,
                         targets=targets, mean=mean, std=std),
                    _progress(progress, rows_of(mine), rows_of(mine) - rows_of(todo), workers, rank))
    if workers > 1 and _communicating():
        summary = summarise(group, mine, workers, rank)
    else:  # one process, or one of several shards run apart: the rows of the store done so far
        summary = summarise(group, [b for b, done in zip(blocks, dataset_store.done_blocks(group)) if done])
    if rank == 0 and summary["rows"] == num_rows:  # complete: no worker writes any more
        dataset_store.remove_partials(group)
        dataset_store.remove_abandoned_builds(store, started)
        group.attrs["summary"] = summary
    return summary


def _block_rows(block_rows, batch, map_shape, num_rows):
    """Rows per block: `block_rows` checked, or the default (see explain_dataset; at most the
    dataset's batches)."""
    if block_rows is None:
        batches = max(1, BLOCK_BYTES // (batch * int(np.prod(map_shape)) * 4))
        return batch * min(batches, math.ceil(num_rows / batch))
    _checks.check_positive_int(block_rows, "block_rows")
    if block_rows % batch:
        raise ValueError(f"`block_rows` must be a multiple of the dataset's batch size {batch}, got {block_rows}.")
    return block_rows


def _communicating():
    from mindspore.communication.management import GlobalComm  # pylint: disable=import-outside-toplevel
    return bool(GlobalComm.INITED)


def _jsonable(value):
    return json.loads(json.dumps(value, default=repr))


def _progress(progress, total, done, workers, rank):
    """The bar of this worker's `total` rows, `done` of them by an earlier, interrupted run."""
    show = sys.stderr.isatty() if progress is None else bool(progress)
    where = f" (worker {rank + 1}/{workers})" if workers > 1 else ""
    resumed = f", resumed: {done} rows were done" if done else ""
    return tqdm(total=total, initial=done, unit="img", desc=f"explaining{where}{resumed}", disable=not show,
                dynamic_ncols=True)


def _reading(pipeline, indices):
    """A copy of the pipeline whose source reads only the rows `indices`, in that order (the
    user's pipeline is left as it was)."""
    copied = copy.deepcopy(pipeline)
    _leaf(copied).use_sampler(ds.SubsetSampler(list(indices)))
    return copied


def _run_blocks(pipeline, todo, block, batch, num_rows, group, job, bar):
    """Explain the blocks `todo` (in order) through a copy of the pipeline reading only their rows.

    The batches of a block are gathered, then one writer thread turns its inputs into pictures and
    writes it (its data, then its done flag) while the next block is computed; at most two blocks
    wait for the writer, and a failed write is raised here, at the latest two blocks later."""
    indices = [i for b in todo for i in range(b * block, min((b + 1) * block, num_rows))]
    batches = _reading(pipeline, indices).create_tuple_iterator(num_epochs=1, output_numpy=True)
    handles, pending = {}, collections.deque()
    with bar, concurrent.futures.ThreadPoolExecutor(max_workers=1) as writer:
        for b in todo:
            start, stop = b * block, min((b + 1) * block, num_rows)
            parts = []
            for row in range(start, stop, batch):
                columns = next(batches, None)
                images, labels, masks = _columns(columns) if columns is not None else (np.zeros(0),) * 3
                if len(images) != min(batch, stop - row):
                    raise ValueError(f"`dataset` gave a batch of {len(images)} rows where {min(batch, stop - row)} "
                                     "were expected: it must map source rows one to one into batches.")
                parts.append((images, explain_batch(images, labels, masks, job, job["known"].pop(row, None))))
                bar.update(len(images))
            while len(pending) >= 2:
                pending.popleft().result()
            pending.append(writer.submit(_write_block, group, start, parts, job, handles))
        while pending:
            pending.popleft().result()


def _write_block(group, start, parts, job, handles):
    """Write the block of (images, rows) batches `parts` at row `start`, with the inputs' pictures."""
    rows = {name: np.concatenate([r[name] for _, r in parts]) for name in parts[0][1]}
    rows["picture"] = visual.to_uint8_image(np.concatenate([x for x, _ in parts]), job["mean"], job["std"])
    dataset_store.write_block(group, start, rows, handles)


def probability_kernel(net, activation):
    """inputs -> activation(net(inputs)), compiled once per (network, activation) and cached.

    Not checked for non-finite values: the methods run on the same inputs check theirs."""
    def probabilities(x):
        return activation(view(x))
    view = _cache.evaluable(net)
    return _cache.cached(net, ("dataset_probabilities", _cache.callable_key(activation)),
                         lambda: _cache.compiled(probabilities, checked=False))


def explain_batch(images, labels, masks, job, probabilities=None):
    """The store rows of one batch: label, target, prediction, probability, maps, scores (the
    pictures are made by the writer); `probabilities`, when given, those of the images (else computed)."""
    x = ms.Tensor(images)
    probabilities = job["probabilities"](x).asnumpy() if probabilities is None else probabilities
    prediction = probabilities.argmax(axis=1).astype(np.int64)
    if job["targets"] == "label":
        if (labels < 0).any() or (labels >= probabilities.shape[1]).any():
            raise ValueError(f"targets='label' needs labels in [0, {probabilities.shape[1]}), got "
                             f"{sorted(set(labels.tolist()))}.")
        target = labels
    else:
        target = prediction
    rows = {"label": labels, "target": target, "prediction": prediction,
            "probability": probabilities[np.arange(len(target)), target].astype(np.float32)}
    target_tensor = ms.Tensor(target.astype(np.int32))
    for name, method in job["methods"].items():
        maps = method(x, target_tensor)
        maps = maps.asnumpy() if isinstance(maps, ms.Tensor) else np.asarray(maps)
        if maps.shape != (len(images), 1) + images.shape[2:]:
            raise ValueError(f"method {name!r} returned maps of shape {maps.shape}, expected "
                             f"{(len(images), 1) + images.shape[2:]}.")
        rows[f"maps/{name}"] = maps[:, 0].astype(np.float32)
        for metric, fn in job["metrics"].items():
            result = fn(job["net"], x, target_tensor, maps, masks)
            scores, curves = result if isinstance(result, tuple) else (result, None)
            rows[f"scores/{name}/{metric}"] = _per_sample(scores, len(images), f"metric {metric!r}")
            if curves is not None:
                rows[f"curves/{name}/{metric}"] = np.asarray(curves, np.float64).reshape(len(images), -1)
    return rows


def _per_sample(scores, count, what):
    values = np.asarray(scores.asnumpy() if isinstance(scores, ms.Tensor) else scores, np.float64)
    if values.shape != (count,):
        raise ValueError(f"{what} must give one score per sample, shape ({count},), got {values.shape}.")
    return values


def summarise(group, blocks, workers=1, rank=0):
    """The summary over all workers' rows, from each worker's `blocks` of the store."""
    block, num_rows = group.attrs["block"], group["done"].shape[0]
    rows = np.array([i for b in blocks for i in range(b * block, min((b + 1) * block, num_rows))], np.int64)
    target, label, prediction = (group[k][:][rows] if len(rows) else np.zeros(0, np.int64)
                                 for k in ("target", "label", "prediction"))
    classes = range(group.attrs["num_classes"])
    groups = {"accuracy": [float(v) for v in (prediction == label)[label >= 0]]}
    for method in group.attrs["methods"]:
        for metric in group.attrs["metrics"]:
            scores = group[f"scores/{method}/{metric}"][:][rows] if len(rows) else np.zeros(0)
            finite = np.isfinite(scores)
            groups[f"{method}/{metric}/all"] = [float(v) for v in scores[finite]]
            for c in classes:
                groups[f"{method}/{metric}/{c}"] = [float(v) for v in scores[(target == c) & finite]]
    totals = reduce_sums(groups, workers, rank)
    total_rows = int(_all_sum(np.array([len(rows)], np.float32), workers)[0])
    accuracy_sum, labelled = totals["accuracy"]
    summary = dict(rows=total_rows, labelled=labelled,
                   accuracy=accuracy_sum / labelled if labelled else None, methods={})
    for method in group.attrs["methods"]:
        summary["methods"][method] = {}
        for metric in group.attrs["metrics"]:
            total, count = totals[f"{method}/{metric}/all"]
            per_class = {str(c): totals[f"{method}/{metric}/{c}"] for c in classes}
            summary["methods"][method][metric] = dict(
                mean=total / count if count else None, count=count,
                per_class={c: s / n for c, (s, n) in per_class.items() if n})
    return summary
