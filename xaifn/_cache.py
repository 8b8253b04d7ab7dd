"""The compile cache: one compiled kernel per (owner, method key), rebuilt when the owner changes.

Kernel key. An entry is found by (owner, key) and is valid for one *version* of the owner:

* owner -- the explained network (a Cell, or a plain function, by identity), held weakly;
* key -- the method and its settings; callables inside it (activation functions, inlier
  functions) enter through `callable_key`, so equal stateless activations (two ``nn.Softmax()``,
  ``ops.softmax``) and equal inlier functions (``ood.inlier_fn(params, f)`` made twice from the
  same objects) share a kernel;
* version -- for a Cell: the storage of its Parameters (``Parameter.data_ptr()``: a checkpoint
  loaded with ``load_param_into_net`` or ``set_data`` moves it) and `structure`, a fingerprint of
  its cell tree (each cell's name, type and identity, its primitives' settings and its plain
  attribute values). Replacing a sub-cell (``net.act = nn.Tanh()``) or flipping a flag
  (``net.output_features = True``) changes the version, and the next call rebuilds the view and
  its kernels, so a call always explains the network as it is at that call. For a plain function
  the version is empty: what it closes over is not seen.

A warning is issued once per owner and kind when `RECOMPILE_WARNING` kernels of one kind (the str
parts of their keys: the method, the layer) have been compiled for it -- the sign of a key (or a
version) that differs at every call. Many methods on one network compile many kernels of different
kinds, once each, and do not warn.

One call, one fingerprint. Computing a version walks the owner's cell tree (5-25 ms for a mindcv
ResNet), and one explanation looks its network up several times (checks, profile, kernel). Inside a
function decorated with `one_call` (every explanation method and perturbation metric) each owner's
version is computed once and reused until that function returns: nothing in one explanation changes
the network it explains. A nested `one_call` (a method called by a metric or by SmoothGrad) starts
afresh, so a network changed between two nested calls (model randomisation's private copy) is seen.

Threads. MindSpore's graph compiler, its jit cache and its PyNative executor are not thread-safe
(concurrent first calls raise RuntimeErrors or crash). Every xaifn entry point that runs MindSpore
therefore holds one process-wide re-entrant lock (`serialised`) while it does; see
docs/design.rst, "Threads".
"""
import collections
import functools
import threading
import warnings
import weakref

import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore.ops import Primitive

from xaifn import _views

_KERNELS = weakref.WeakKeyDictionary()
_BUILDS = weakref.WeakKeyDictionary()
#: owner -> Counter of the kernels compiled for it, per kind (the str parts of their keys).
_KINDS = weakref.WeakKeyDictionary()
#: Kernels kept per owner (least recently used dropped first): bounds memory when keys vary.
MAX_KERNELS_PER_OWNER = 32
#: Kernels of one kind compiled for one owner at which a "keeps recompiling" warning is issued.
RECOMPILE_WARNING = 16
_LOCK = threading.RLock()
#: Inside a `one_call` function: id(owner) -> (owner, its version), computed once for the call.
_VERSIONS = None
_CELL_ATTRIBUTES = frozenset(vars(nn.Cell()))
_PLAIN = (type(None), bool, int, float, complex, str, bytes)


def serialised(fn):
    """`fn` run while holding xaifn's process-wide MindSpore lock (re-entrant)."""
    @functools.wraps(fn)
    def locked(*args, **kwargs):
        with _LOCK:
            return fn(*args, **kwargs)
    return locked


def one_call(fn):
    """`serialised`, and each owner's version computed once while `fn` runs (module docstring)."""
    @functools.wraps(fn)
    def scoped(*args, **kwargs):
        global _VERSIONS  # pylint: disable=global-statement
        with _LOCK:
            outer, _VERSIONS = _VERSIONS, {}
            try:
                return fn(*args, **kwargs)
            finally:
                _VERSIONS = outer
    return scoped


class Same:
    """A key part equal only to the very same object; holds it, so its id is never reused."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return isinstance(other, Same) and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)


def _value_key(value):
    """A hashable stand-in for an attribute value: plain values and primitives by value, anything
    else by identity (`Same`)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list)) and len(value) <= 64:
        return (type(value).__name__,) + tuple(_value_key(v) for v in value)
    if isinstance(value, Primitive):
        return ("primitive", repr(value))
    if isinstance(value, ms.dtype.Type):
        return ("dtype", str(value))
    return Same(value)


def _compared(value):
    """`_value_key` for equality only (`structure`): a primitive by its type and a copy of its
    settings dict (no repr: a mindcv ResNet-50 has 923 primitives; 4 ms instead of 22)."""
    if isinstance(value, Primitive):
        return ("primitive", type(value), value.attrs.copy())
    return _value_key(value)


def _cell_tree(cell, key=_value_key):
    """(name, type, attribute keys) for every cell under `cell` (attributes in definition order)."""
    return tuple((name, type(sub), tuple((k, key(v)) for k, v in vars(sub).items() if k not in _CELL_ATTRIBUTES))
                 for name, sub in cell.cells_and_names())


def structure(cell):
    """The structural fingerprint of a Cell's tree (see the module docstring), for equality tests.
    Cheap: no copy.

    The cell itself is left out of the identities: the cache's entries for a network must not
    keep that network alive.
    """
    cells = tuple(Same(sub) for _, sub in cell.cells_and_names() if sub is not cell)
    return cells, _cell_tree(cell, _compared)


def callable_key(fn):
    """The cache key of a callable argument (activation or inlier function).

    Parameter-free Cells are keyed by their type and settings (two ``nn.Softmax()`` are equal);
    functions carrying an ``xaifn_key`` attribute (``ood.inlier_fn``) by what it returns when
    called (at each call, so it can include the current storage of Tensors);
    ``functools.partial`` by its function and arguments; anything else by identity.
    """
    if isinstance(fn, nn.Cell) and not list(fn.get_parameters()):
        return ("cell", _cell_tree(fn))
    custom = getattr(fn, "xaifn_key", None)
    if custom is not None:
        return ("custom", custom())
    if isinstance(fn, functools.partial):
        return ("partial", callable_key(fn.func), _value_key(fn.args),
                _value_key(tuple(sorted(fn.keywords.items()))))
    return Same(fn)


def _version(owner):
    if not isinstance(owner, nn.Cell):
        return None
    if _VERSIONS is None:
        return tuple(p.data_ptr() for p in owner.get_parameters()), structure(owner)
    entry = _VERSIONS.get(id(owner))
    if entry is None or entry[0] is not owner:
        entry = _VERSIONS[id(owner)] = (owner, tuple(p.data_ptr() for p in owner.get_parameters()),
                                        structure(owner))
    return entry[1:]


def _same_version(one, other):
    """one == other; False where comparing two values of a primitive's settings is ambiguous
    (Tensors)."""
    try:
        return bool(one == other)
    except (TypeError, ValueError, RuntimeError):
        return False


@serialised
def cached(owner, key, build):
    """Return build()'s result, cached for `owner` (a Cell or function) under `key`.

    The entry is rebuilt when `owner`'s version (Parameter storage, cell structure) has changed,
    and dropped when `owner` is garbage collected. Runs under the process-wide lock.
    """
    table = _KERNELS.setdefault(owner, collections.OrderedDict())
    version = _version(owner)
    entry = table.get(key)
    if entry is None or not _same_version(entry[0], version):
        entry = (version, build())
        table[key] = entry
        while len(table) > MAX_KERNELS_PER_OWNER:
            table.popitem(last=False)
        if isinstance(entry[1], _Compiled):
            entry[1].method = entry[1].method and method_name(key)
            _count_build(owner, key)
    table.move_to_end(key)
    return entry[1]


#: Method names, as they appear in kernel keys, for error messages.
METHODS = ("gradient", "deconvolution", "guided_backprop", "gradcam", "rise_plus", "rise", "occlusion",
           "integrated_gradients", "input_x_gradient", "scorecam", "guided_gradcam", "layer_cam",
           "removal_scores", "smooth_grad")


def method_name(key):
    """The explanation method a kernel key belongs to (its first part naming one), else key[0]."""
    return next((part for part in key if isinstance(part, str) and part in METHODS), str(key[0]))


def finite_mask(value):
    """ops.isfinite(value), also for bfloat16 (which MindSpore's CPU IsFinite lacks). Traceable."""
    return ops.isfinite(value.astype(ms.float32) if value.dtype == ms.bfloat16 else value)


@ms.jit
def _all_finite(value):
    return finite_mask(value).all()


def all_finite(value):
    """True if every element of the float Tensor `value` is finite. On the CPU backend a Tensor
    lives in host memory and numpy reads it in microseconds (the eager isfinite + all + read took
    2-11 ms per call); on a device, one compiled reduction (compiled once per shape)."""
    with _LOCK:
        if ms.get_context("device_target") == "CPU" and value.dtype != ms.bfloat16:
            return bool(np.isfinite(value.asnumpy()).all())
        return bool(_all_finite(value))


def check_finite_result(values, method):
    """Raise FloatingPointError if a method's result holds NaN or Inf (from non-finite logits or
    scores of the network: its weights, or an overflow), rather than return a plausible map."""
    for value in values if isinstance(values, (tuple, list)) else (values,):
        if isinstance(value, ms.Tensor) and value.dtype != ms.bool_ and not all_finite(value):
            raise FloatingPointError(f"{method}: the network produced non-finite (NaN or Inf) logits or "
                                     "scores for these inputs, so no map is returned. Check its weights, "
                                     "or run it in a wider float type.")
    return values


def _count_build(owner, key):
    _BUILDS[owner] = _BUILDS.get(owner, 0) + 1
    kinds = _KINDS.setdefault(owner, collections.Counter())
    kind = tuple(part for part in key if isinstance(part, str))
    kinds[kind] += 1
    if kinds[kind] == RECOMPILE_WARNING:
        name = type(owner).__name__ if isinstance(owner, nn.Cell) else getattr(owner, "__name__", "net_fn")
        warnings.warn(f"xaifn has compiled {kinds[kind]} kernels of one kind ({', '.join(kind)}) for "
                      f"{name}: it keeps recompiling. Pass the same (or an equal, parameter-free) activation_fn / inlier_fn at each call, and "
                      "avoid replacing Parameters or cells of the network between calls.",
                      RuntimeWarning, stacklevel=4)


def evaluable(net_fn):
    """The eval-mode view of a Cell (or a plain function itself), built once and shared by every
    kernel and check of that network (rebuilt with them when the network changes)."""
    return cached(net_fn, ("evaluable",), lambda: _views.evaluable(net_fn))


def selected(net_fn, output):
    """`net_fn` followed by the choice `output` of one of its outputs (`_views.select_output`),
    built once per (net_fn, output) so that every kernel of the selection is compiled once."""
    if output is None:
        return net_fn
    return cached(net_fn, ("output", output), lambda: _views.select_output(net_fn, output))


class _Compiled(nn.Cell):
    """`fn` compiled by `ms.jit`, held by a Cell of its own; calls hold the process-wide lock.

    MindSpore names the graph of a Cell's method after that Cell, so one kernel per network and
    method compiles quietly; plain `@ms.jit` closures made from one `def` share a name and log a
    "compiled again" warning for every new network.
    """

    def __init__(self, fn, checked=True):
        super().__init__(auto_prefix=False)
        self.fn = fn
        #: the method named in errors about non-finite results; "" for kernels not checked
        self.method = "kernel" if checked else ""

    def __call__(self, *args):
        with _LOCK:
            out = super().__call__(*args)
            return check_finite_result(out, self.method) if self.method else out

    @ms.jit
    def construct(self, *args):
        return self.fn(*args)


def compiled(fn, checked=True):
    """`fn` compiled with `ms.jit` (once per input signature), as a callable.

    When `checked`, results that hold NaN or Inf raise FloatingPointError naming the method of the
    kernel's cache key (`cached`); pass checked=False for a kernel whose caller checks.
    """
    return _Compiled(fn, checked)


def training_step(loss_of, optimizer):
    """A compiled step: gradients of `loss_of(*batch)` w.r.t. `optimizer.parameters`, applied by
    `optimizer`; returns the loss."""
    grad_fn = ms.value_and_grad(loss_of, None, optimizer.parameters)

    def step(inputs, labels):
        loss, grads = grad_fn(inputs, labels)
        optimizer(grads)
        return loss
    return compiled(step, checked=False)
