"""One small dataset explanation, the same in the test process, in a subprocess and under msrun.

    python tests/_dataset_job.py STORE [--slow]

A seeded 3 x 8 x 8 dataset of 24 images in batches of 4, a tiny seeded conv net, three methods and
one score with a curve. `--slow` sleeps in each batch so that a test can kill the run mid-way.
"""
import sys
import time

import numpy as np
import mindspore as ms
import mindspore.dataset as ds
from mindspore import nn

import xaifn

ROWS, BATCH, SIZE, CLASSES = 24, 4, 8, 3
#: rows scored by `drop` in this process, per method (how many rows this worker explained)
SCORED = []


class TinyNet(nn.Cell):
    """conv -> ReLU -> global mean -> dense, weights drawn from a seeded numpy generator."""

    def __init__(self, seed=0):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same", has_bias=True)
        self.relu = nn.ReLU()
        self.fc = nn.Dense(4, CLASSES)
        rng = np.random.default_rng(seed)
        for param in self.get_parameters():
            param.set_data(ms.Tensor(rng.normal(0, 0.5, param.shape).astype(np.float32)))

    def construct(self, x):
        return self.fc(self.relu(self.conv(x)).mean(axis=(2, 3)))


def data():
    """(images (24, 3, 8, 8), labels (24,)) from a fixed seed."""
    rng = np.random.default_rng(7)
    return rng.normal(0, 1, (ROWS, 3, SIZE, SIZE)).astype(np.float32), (np.arange(ROWS) % CLASSES).astype(np.int32)


def pipeline():
    """The unshuffled (image, label) pipeline in batches of 4."""
    images, labels = data()
    return ds.NumpySlicesDataset((images, labels), column_names=["image", "label"], shuffle=False).batch(BATCH)


def drop(net, inputs, targets, maps, masks):  # pylint: disable=unused-argument
    """Target probability lost when the top quarter of each map's pixels is zeroed, and the curve
    of the sorted map's cumulative share (a per-sample curve for the store)."""
    SCORED.append(len(maps))
    flat = maps.reshape(len(maps), -1)
    top = flat >= np.quantile(flat, 0.75, axis=1, keepdims=True)
    kept = inputs.asnumpy() * (~top).reshape(maps.shape)
    before, after = (nn.Softmax()(net(x)).asnumpy()[np.arange(len(maps)), targets.asnumpy()]
                     for x in (inputs, ms.Tensor(kept)))
    ordered = np.sort(np.abs(flat), axis=1)[:, ::-1]
    curve = np.cumsum(ordered, axis=1) / np.maximum(ordered.sum(axis=1, keepdims=True), 1e-12)
    return before - after, curve[:, ::16]


def run(store, slow=False, **kwargs):
    """explain_dataset of the job into `store`; returns the summary."""
    net = TinyNet()
    methods = ["gradient", "occlusion", "rise"]
    if slow:
        gradient = lambda x, t: (time.sleep(0.25), xaifn.gradient(net, x, t))[1]  # noqa: E731
        methods = {"gradient": gradient, "occlusion": "occlusion", "rise": "rise"}
    kwargs = dict(dict(block_rows=BATCH, progress=False), **kwargs)  # blocks of one batch: 6 blocks to kill
    return xaifn.explain_dataset(net, pipeline(), methods, store, metrics={"drop": drop},  # the run between
                                 method_options=dict(num_masks=16, window=3, stride=2), **kwargs)


if __name__ == "__main__":
    run(sys.argv[1], slow="--slow" in sys.argv)
    print("EXPLAINED", sum(SCORED) // 3, "SHARD", *xaifn.dataset_runner.shard_of(), flush=True)
