"""The on-disk store of a dataset explanation: one zarr group (zarr format 2) in a folder.

Why zarr rather than a home-made layout: the store is a set of N-d arrays cut into chunks, each
chunk one file written atomically (to a temporary name, then renamed), with the array's shape,
dtype and chunking in small JSON files beside it. That gives what a resumable, multi-worker run
needs without any code of ours: workers that write disjoint chunks need no locks, a killed
writer never leaves a torn chunk behind, and any tool with a zarr reader (Python, Julia, R, JS,
C++) can read the maps and scores back, lazily and chunk by chunk. `numpy.save` files or one HDF5
file would need our own locking and recovery; a home-made folder of .npy files would need our own
atomicity, metadata and readers.

Layout, for N samples in dataset order and blocks of R rows (R a multiple of the batch size)::

    attrs        format, fingerprint, config (the arguments), methods, metrics, num_classes,
                 block (R), class_names, summary (written when the run is complete)
    label        int64   (N,)           the dataset's label, -1 where it has none
    target       int64   (N,)           the class explained
    prediction   int64   (N,)           argmax of the network's logits
    probability  float32 (N,)           activation(logits)[target]
    picture      uint8   (N, H, W, 3)   the input as a picture (for reports)
    maps/METHOD              float32 (N, H, W)
    scores/METHOD/METRIC     float64 (N,)
    curves/METHOD/METRIC     float64 (N, P)    (metrics that return a curve per sample)
    done         bool    (N,)           written last: a row counts only once its block is done

Every array is chunked by R rows, so one block of R samples is one file per array, written by one
worker only. The `done` chunk of a block is written after every other array of that block: a
run killed at any point leaves blocks that are either complete and marked done, or not marked
and written again, with the same values, when the run is resumed. A killed writer may leave a
temporary `*.partial` file beside a chunk (zarr writes each chunk to one, then renames it); readers
never look at them, and `remove_partials` deletes them: those of its own blocks when a worker
resumes (no other worker writes them), and every one when the run is complete.
"""
import hashlib
import json
import os
import pathlib
import re
import shutil
import uuid

import numpy as np
import zarr

#: Version of the layout above, part of every fingerprint.
FORMAT = 1

_ROWS = (("label", np.int64, -1), ("target", np.int64, -1), ("prediction", np.int64, -1),
         ("probability", np.float32, np.nan))


def fingerprint(config):
    """sha256 of the canonical JSON of `config` (a dict of JSON-able values)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def open_store(path, config, layout):
    """Create the store at `path` for `config`, or open the one made earlier with the same config.

    Args:
        path: folder of the zarr group.
        config: JSON-able dict of every argument that determines the results; its fingerprint is
            kept in the store, and a store made with another config is refused (ValueError naming
            the arguments that differ), never mixed.
        layout: dict with num_rows, block, map_shape (H, W), methods, metrics, num_classes,
            class_names; or a function returning it, called only when the store is created.
    """
    path = pathlib.Path(path)
    digest = fingerprint(config)
    if (path / ".zgroup").is_file():
        group = zarr.open_group(str(path), mode="r+")
        if group.attrs.get("fingerprint") != digest:
            old = group.attrs.get("config", {})
            differ = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise ValueError(f"`store` {str(path)!r} was made with other arguments (differing: "
                             f"{', '.join(differ) or 'format'}); give another store, or delete it to start again.")
        return group
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ValueError(f"`store` {str(path)!r} exists and is not an xaifn store; give a new folder.")
    if path.is_dir():
        path.rmdir()
    path.parent.mkdir(parents=True, exist_ok=True)
    return _create(path, config, digest, layout() if callable(layout) else layout)


def _create(path, config, digest, layout):
    """Build the store in a temporary folder and rename it into place (atomic: of several workers
    creating it at once, one wins and the others open its store)."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    _build(zarr.open_group(str(temporary), mode="w"), config, digest, layout)
    try:
        os.rename(temporary, path)
    except OSError:
        shutil.rmtree(temporary)
        return open_store(path, config, layout)
    return zarr.open_group(str(path), mode="r+")


def _build(group, config, digest, layout):
    rows, block = layout["num_rows"], layout["block"]
    height, width = layout["map_shape"]
    for name, dtype, fill in _ROWS:
        group.create_dataset(name, shape=(rows,), chunks=(block,), dtype=dtype, fill_value=fill)
    group.create_dataset("picture", shape=(rows, height, width, 3), chunks=(block, height, width, 3),
                         dtype=np.uint8, fill_value=0)
    for method in layout["methods"]:
        group.create_dataset(f"maps/{method}", shape=(rows, height, width), chunks=(block, height, width),
                             dtype=np.float32, fill_value=np.nan)
        for metric in layout["metrics"]:
            group.create_dataset(f"scores/{method}/{metric}", shape=(rows,), chunks=(block,),
                                 dtype=np.float64, fill_value=np.nan)
    group.create_dataset("done", shape=(rows,), chunks=(block,), dtype=bool, fill_value=False)
    group.attrs.update(format=FORMAT, fingerprint=digest, config=config, methods=list(layout["methods"]),
                       metrics=list(layout["metrics"]), num_classes=layout["num_classes"], block=block,
                       class_names=layout.get("class_names"), lower_is_better=list(layout.get("lower_is_better", [])))


def write_block(group, start, rows, handles=None):
    """Write one block of rows starting at row `start`, then mark it done.

    `rows` maps array names of the layout ('label', 'maps/gradient', 'curves/rise/deletion', ...)
    to arrays whose first axis is the block's rows. Curve arrays are created on first use.
    `handles`, a dict kept by the caller across blocks, caches the opened arrays (opening one
    reads its metadata file).
    """
    handles = {} if handles is None else handles
    count = None
    for name, values in list(rows.items()) + [("done", None)]:
        if name not in handles:
            if name.startswith("curves/") and name not in group:
                _require_curve(group, name, np.shape(values)[1])
            handles[name] = group[name]
        if values is None:
            values = np.ones(count, bool)
        values = np.asarray(values)
        count = len(values)
        handles[name][start:start + count] = values


def _require_curve(group, name, length):
    rows, block = group["done"].shape[0], group.attrs["block"]
    try:
        group.create_dataset(name, shape=(rows, length), chunks=(block, length), dtype=np.float64,
                             fill_value=np.nan)
    except zarr.errors.ContainsArrayError:  # another worker created it first: same metadata
        pass


#: A temporary file of zarr's DirectoryStore: "<chunk key or .zarray/.zattrs/.zgroup>.<uuid4 hex>.partial".
_PARTIAL = re.compile(r"(?P<key>\d+(?:\.\d+)*|\.zarray|\.zattrs|\.zgroup)\.[0-9a-f]{32}\.partial")


def remove_partials(group, blocks=None):
    """Delete the temporary `*.partial` files that killed writers left in the store; returns how many.

    With `blocks`, only the chunk files of those blocks (the caller's own blocks, about to be
    written again: no other worker writes them); without, every one (call it only when no worker
    writes any more, i.e. once every block is done).
    """
    keep = None if blocks is None else {int(b) for b in blocks}
    removed = 0
    for folder, _, files in os.walk(group.store.path):
        for name in files:
            match = _PARTIAL.fullmatch(name)
            if not match or (keep is not None and (match["key"].startswith(".")
                                                   or int(match["key"].split(".")[0]) not in keep)):
                continue
            try:
                os.remove(os.path.join(folder, name))
                removed += 1
            except FileNotFoundError:  # removed meanwhile by its writer (zarr's own clean-up)
                pass
    return removed


def remove_abandoned_builds(path, before):
    """Delete the temporary folders beside the store `path` in which a killed worker was building
    the store (see `_create`), last modified before the time `before` (a `time.time()`); returns how
    many. A worker building one now would have been at it since `before`: pass the start of a run
    that has since created or opened the store."""
    path = pathlib.Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + r"[0-9a-f]{32}\.partial")
    removed = 0
    for folder in path.parent.iterdir():
        if pattern.fullmatch(folder.name) and folder.is_dir() and folder.stat().st_mtime < before:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def done_blocks(group):
    """bool (number of blocks,): True where every row of the block is marked done."""
    done = group["done"][:]
    block = group.attrs["block"]
    return np.array([done[b:b + block].all() for b in range(0, len(done), block)], bool)


def arrays(group):
    """{name: numpy array} of every array in the store (for comparisons and reports)."""
    out = {}
    group.visititems(lambda name, item: out.__setitem__(name, item[:]) if isinstance(item, zarr.Array) else None)
    return out
