"""The compile cache: one compiled kernel per (owner, method key), rebuilt when weights move.

`ms.jit` compiles once per function object and input signature. A compiled function keeps
reading the storage its Parameters had when it was compiled, so a checkpoint loaded afterwards
(`load_param_into_net`, `set_data`) would be silently ignored; the storage addresses
(`Parameter.data_ptr()`) are therefore part of the key, and a kernel is rebuilt when they change.
"""
import collections
import weakref

import mindspore as ms
from mindspore import nn

from xaifn import _views

_KERNELS = weakref.WeakKeyDictionary()
#: Kernels kept per owner (least recently used dropped first): bounds memory when keys vary.
MAX_KERNELS_PER_OWNER = 32


def _weights_version(owner):
    if isinstance(owner, nn.Cell):
        return tuple(p.data_ptr() for p in owner.get_parameters())
    return None


def cached(owner, key, build):
    """Return build()'s result, cached for `owner` (a Cell or function) under `key`.

    The entry is rebuilt when the storage of `owner`'s Parameters has moved, and dropped when
    `owner` is garbage collected.
    """
    table = _KERNELS.setdefault(owner, collections.OrderedDict())
    version = _weights_version(owner)
    entry = table.get(key)
    if entry is None or entry[0] != version:
        entry = (version, build())
        table[key] = entry
        while len(table) > MAX_KERNELS_PER_OWNER:
            table.popitem(last=False)
    table.move_to_end(key)
    return entry[1]


def evaluable(net_fn):
    """The eval-mode view of a Cell (or a plain function itself), built once and shared by every
    kernel and check of that network (rebuilt with them when its weights move)."""
    return cached(net_fn, ("evaluable",), lambda: _views.evaluable(net_fn))


def selected(net_fn, output):
    """`net_fn` followed by the choice `output` of one of its outputs (`_views.select_output`),
    built once per (net_fn, output) so that every kernel of the selection is compiled once."""
    if output is None:
        return net_fn
    return cached(net_fn, ("output", output), lambda: _views.select_output(net_fn, output))


class _Compiled(nn.Cell):
    """`fn` compiled by `ms.jit`, held by a Cell of its own.

    MindSpore names the graph of a Cell's method after that Cell, so one kernel per network and
    method compiles quietly; plain `@ms.jit` closures made from one `def` share a name and log a
    "compiled again" warning for every new network.
    """

    def __init__(self, fn):
        super().__init__(auto_prefix=False)
        self.fn = fn

    @ms.jit
    def construct(self, *args):
        return self.fn(*args)


def compiled(fn):
    """`fn` compiled with `ms.jit` (once per input signature), as a callable."""
    return _Compiled(fn)


def training_step(loss_of, optimizer):
    """A compiled step: gradients of `loss_of(*batch)` w.r.t. `optimizer.parameters`, applied by
    `optimizer`; returns the loss."""
    grad_fn = ms.value_and_grad(loss_of, None, optimizer.parameters)

    def step(inputs, labels):
        loss, grads = grad_fn(inputs, labels)
        optimizer(grads)
        return loss
    return compiled(step)
