"""Parameter-sharing views of a user's network: eval-mode clones, activation rules, layer probes.

The user's Cell is never modified. A view is a structural clone: every cell is a new object
holding a shallow copy of its original's attributes, so the Parameters, the primitives and every
non-Cell object (locks, configuration, ``ops.LpNorm`` with bound arguments) are shared, not
copied; child cells, and cells held in lists, tuples or dicts (``SequentialCell.cell_list``), are
the clones. The clones are switched to eval mode and some of them swapped for xaifn's:

* activation rules (`xaifn._rules`) -- an activation with its own backward, for methods.md's table;
* `_LayerProbe` -- adds a zero "probe" Parameter to a layer's output, so that the gradient with
  respect to the probe is the gradient with respect to the layer's output, and records the
  activation with ``ops.assign``. Works under ``ms.jit`` and GRAPH_MODE, unlike hooks.

``copy.deepcopy`` is not used: it fails on primitives with bound arguments and on objects that
cannot be pickled (a ``threading.Lock``), and copying them is never needed.
"""
import contextlib

import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore._c_expression import Cell_  # pylint: disable=no-name-in-module


class _LayerProbe(nn.Cell):
    """Wraps a layer: output A + probe (a zero Parameter); A is written into `store`."""

    def __init__(self, layer, shape, dtype):
        super().__init__(auto_prefix=False)  # a prefix would rename the user's shared Parameters
        self.layer = layer
        zeros = ms.Tensor(np.zeros(shape), dtype)
        self.probe = ms.Parameter(zeros, name="xaifn_probe", requires_grad=True)
        self.store = ms.Parameter(zeros.copy(), name="xaifn_store", requires_grad=False)

    def construct(self, *args):
        activation = self.layer(*args)
        ops.assign(self.store, activation)
        return activation + self.probe


class _LayerTap(nn.Cell):
    """Wraps a layer and records the shape of each of its outputs (eager runs only)."""

    def __init__(self, layer):
        super().__init__(auto_prefix=False)  # a prefix would rename the user's shared Parameters
        self.layer = layer
        self.shapes = []

    def construct(self, *args):
        activation = self.layer(*args)
        self.shapes.append(tuple(activation.shape) if isinstance(activation, ms.Tensor) else type(activation))
        return activation


#: Attributes of a Cell that belong to one object (compiled graphs, phases): reset in a clone.
_PER_OBJECT = {"_compile_cache": None, "_phase_cache": None, "_compile_phase": None, "_compiled": False,
               "arguments_key": "", "_jit_graph_name": "", "_lazy_construct_sig": None}


def _remap(value, clones):
    """`value` with every Cell found in `clones` (by id) replaced by its clone, in containers too."""
    if isinstance(value, nn.Cell):
        return clones.get(id(value), value)
    if isinstance(value, (list, tuple)) and any(isinstance(v, nn.Cell) for v in value):
        items = [_remap(v, clones) for v in value]
        return tuple(items) if type(value) is tuple else items if isinstance(value, list) else value
    if isinstance(value, dict) and any(isinstance(v, nn.Cell) for v in value.values()):
        return type(value)((k, _remap(v, clones)) for k, v in value.items())
    return value


def clone(network):
    """A structural clone of `network` (see the module docstring); the original is untouched."""
    cells = [cell for _, cell in network.cells_and_names()]
    clones = {}
    for cell in cells:
        new = type(cell).__new__(type(cell))
        Cell_.__setstate__(new, Cell_.__getstate__(cell))
        nn.Cell.total_instance_count += 1  # balanced by Cell.__del__
        clones[id(cell)] = new
    for cell in cells:
        new = clones[id(cell)]
        state = {k: _remap(v, clones) for k, v in vars(cell).items()}
        for key in ("_params", "_buffers", "_params_list", "_primitives", "_jit_config_dict"):
            if isinstance(state.get(key), dict):
                state[key] = type(state[key])(state[key])  # own containers, shared contents
        state.update(_PER_OBJECT)
        new.__dict__.update(state)
    return clones[id(network)]


def eval_view(network):
    """A parameter-sharing clone of `network` in eval mode (BatchNorm statistics, no dropout)."""
    view = clone(network)
    view.set_train(False)
    view.set_grad(False)
    return view


def network_view(network, **attributes):
    """A parameter-sharing eval-mode view of `network`, with some attributes set on the view only.

    The user's network is left as it is. Typical use: a feature extractor for OoDNet/RISEPlus from
    a classifier that returns features when a flag is set.

    Example:
        >>> import xaifn
        >>> from xaifn.models import LeNet5
        >>> net = LeNet5()
        >>> features = xaifn.network_view(net, output_features=True)
        >>> features.output_features, net.output_features, features.fc1.weight is net.fc1.weight
        (True, False, True)
    """
    view = eval_view(network)
    for name, value in attributes.items():
        if not hasattr(view, name):
            raise AttributeError(f"{type(network).__name__} has no attribute {name!r} to set on a view.")
        setattr(view, name, value)
    return view


#: Names of the final classifier cell in common model zoos (mindcv: classifier, head, mlp_head).
HEAD_NAMES = ("classifier", "head", "mlp_head", "fc")


def find_head(network, head=None):
    """(name, cell) of the classifier cell: the cell named `head`, or the one top-level cell of
    `network` named as in `HEAD_NAMES`; ValueError naming the candidates otherwise."""
    cells = dict(network.cells_and_names())
    if head is not None:
        if not isinstance(head, str):
            raise TypeError(f"`head` must be the name of a cell (str), got {type(head).__name__}.")
        if not head or head not in cells:
            raise ValueError(f"`head` {head!r} is not a cell of {type(network).__name__}; top-level cells: "
                             f"{[n for n in cells if n and '.' not in n]}.")
        return head, cells[head]
    found = [n for n in HEAD_NAMES if n in cells]
    if len(found) != 1:
        raise ValueError(f"Cannot tell the classifier cell of {type(network).__name__} (cells named as in "
                         f"{HEAD_NAMES}: {found}); pass `head=` the name of the cell to drop.")
    return found[0], cells[found[0]]


def features_view(network, head=None):
    """A parameter-sharing eval-mode view of `network` returning the input of its classifier cell.

    The cell named `head` (default: the one top-level cell named classifier, head, mlp_head or fc)
    is replaced by ``nn.Identity`` in the view only, so the view returns the features the
    classifier reads: a feature extractor for `xaifn.ood`, `OoDNet` and `RISEPlus` from any zoo
    classifier, without editing it.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import SmallResNet
        >>> net = SmallResNet()
        >>> features = xaifn.features_view(net)     # drops net.fc
        >>> features(ms.Tensor(np.zeros((2, 3, 16, 16)), ms.float32)).shape, type(net.fc).__name__
        ((2, 64), 'Dense')
    """
    name, _ = find_head(network, head)
    view = eval_view(network)
    parent_name, _, key = name.rpartition(".")
    parent = dict(view.cells_and_names())[parent_name]
    replace_child(parent, key, nn.Identity())
    return view


def evaluable(net_fn):
    """What an explanation evaluates: an eval-mode view of a Cell, or a plain function as is."""
    return eval_view(net_fn) if isinstance(net_fn, nn.Cell) else net_fn


def _replace(view, predicate, make):
    """Replace, in place in `view`, every child cell `c` with predicate(c) by make(c); count them."""
    count = 0
    for _, parent in list(view.cells_and_names()):
        for key, child in list(parent._cells.items()):  # pylint: disable=protected-access
            if predicate(child):
                replace_child(parent, key, make(child))
                count += 1
    return count


def replace_child(parent, key, new):
    """Make `new` the child `key` of `parent` (a cell of a view), in its containers too."""
    old = parent._cells[key]  # pylint: disable=protected-access
    parent._cells[key] = new  # pylint: disable=protected-access
    for attr, value in vars(parent).items():  # containers keep a list of their cells too
        if isinstance(value, list) and any(c is old for c in value):
            setattr(parent, attr, [new if c is old else c for c in value])


@contextlib.contextmanager
def pynative():
    """Run eagerly in PYNATIVE_MODE, restoring the caller's mode afterwards."""
    mode = ms.get_context("mode")
    if mode != ms.PYNATIVE_MODE:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        yield
    finally:
        if mode != ms.PYNATIVE_MODE:
            ms.set_context(mode=mode)


def check_single_output(out):
    """`out` if it is one Tensor; a ValueError saying how to choose one otherwise."""
    if isinstance(out, ms.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        what = f"a {type(out).__name__} of {len(out)} outputs"
    elif isinstance(out, dict):
        what = f"a dict with keys {sorted(out, key=str)}"
    else:
        what = f"a {type(out).__name__}"
    raise ValueError(f"The network returns {what}, not one Tensor of logits; pass `output=`: the index "
                     "or key of the output to explain, or a function choosing it, e.g. output=0.")


class Output(nn.Cell):
    """The explained network followed by the choice of one of its outputs (`select_output`)."""

    def __init__(self, network, select):
        super().__init__(auto_prefix=False)  # a prefix would rename the user's Parameters
        self.net = network
        self.select = select

    def construct(self, x):
        return self.select(self.net(x))


#: The explained network's cell names inside an `Output` start with this.
OUTPUT_PREFIX = "net."


def unwrapped(network):
    """The user's network inside an `Output`, or `network` itself."""
    return network.net if isinstance(network, Output) else network


def _pick(key):
    def pick(outputs):
        return outputs[key]
    return pick


def select_output(net_fn, output):
    """`net_fn` itself (output None), else `net_fn` followed by outputs[output] (an int or str) or
    output(outputs) (a function): an `Output` Cell for a Cell, a function for a function."""
    if output is None:
        return net_fn
    select = output if callable(output) else _pick(output)
    if isinstance(net_fn, nn.Cell):
        return Output(net_fn, select)

    def selected(x):
        return select(net_fn(x))
    return selected


def output_shape(net_fn, sample_shape, dtype):
    """Shape of net_fn's output on one zero sample of `sample_shape` (C, H, W), run eagerly."""
    with pynative():
        return tuple(check_single_output(net_fn(ms.Tensor(np.zeros((1,) + tuple(sample_shape)), dtype))).shape)


def trace_layer(network, layer_name, sample_shape, dtype):
    """Run a view of `network` once on a zero sample; return (output shape, layer output shape).

    Raises ValueError if the layer is not called exactly once or does not output one Tensor.
    """
    view = eval_view(network)
    tap = _LayerTap(dict(view.cells_and_names())[layer_name])
    _replace(view, lambda c: c is tap.layer, lambda c: tap)
    with pynative():
        out = view(ms.Tensor(np.zeros((1,) + tuple(sample_shape)), dtype))
    if len(tap.shapes) != 1:
        raise ValueError(f"`layer` {layer_name!r} is called {len(tap.shapes)} times in one forward "
                         "pass; GradCAM needs a layer that is called exactly once.")
    return tuple(check_single_output(out).shape), tap.shapes[0]


def layer_probe_view(network, layer, activation_shape, dtype=ms.float32):
    """A parameter-sharing eval-mode view of `network` with a probe on the cell named `layer`.

    `activation_shape` is the layer's output shape (N, K, h, w) for the batch to be explained.
    Use it with `xaifn.layer_activation_gradient`.
    """
    view = eval_view(network)
    target = dict(view.cells_and_names())[layer]
    probe = _LayerProbe(target, activation_shape, dtype)
    _replace(view, lambda c: c is target, lambda c: probe)
    object.__setattr__(view, "xaifn_probe", probe)  # a reference, not a second child cell
    return view
