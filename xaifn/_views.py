"""Parameter-sharing views of a user's network: eval-mode clones, ReLU rules, layer probes.

The user's Cell is never modified. A view is a structural copy whose cells are new objects but
whose Parameters are the user's own (so a checkpoint loaded into the network is seen by the view),
switched to eval mode, with some cells swapped for xaifn's:

* `_RuleReLU` -- a ReLU with its own backward (``bprop``), for the rule table of methods.md;
* `_LayerProbe` -- adds a zero "probe" Parameter to a layer's output, so that the gradient with
  respect to the probe is the gradient with respect to the layer's output, and records the
  activation with ``ops.assign``. Works under ``ms.jit`` and GRAPH_MODE, unlike hooks.
"""
import contextlib
import copy

import numpy as np
import mindspore as ms
from mindspore import nn, ops

#: Gradient passed back through a ReLU, given R (gradient at its output) and z (its input).
RELU_RULES = ("gradient", "deconvolution", "guided_backprop")


class _RuleReLU(nn.Cell):
    """ReLU whose backward follows one row of the rule table (methods.md)."""

    def __init__(self, rule):
        super().__init__()
        self.deconvolution = rule == "deconvolution"
        self.guided = rule == "guided_backprop"

    def construct(self, x):
        return ops.relu(x)

    def bprop(self, x, out, dout):
        # `ops.relu` may not appear here as well under jit: write the rules with other ops.
        if self.deconvolution:
            return (ops.maximum(dout, 0),)
        passed = dout * (x > 0).astype(dout.dtype)
        if self.guided:
            return (ops.maximum(passed, 0),)
        return (passed,)


class _LayerProbe(nn.Cell):
    """Wraps a layer: output A + probe (a zero Parameter); A is written into `store`."""

    def __init__(self, layer, shape, dtype):
        super().__init__(auto_prefix=False)  # a prefix would rename the user's shared Parameters
        self.layer = layer
        zeros = ms.Tensor(np.zeros(shape), dtype)
        self.probe = ms.Parameter(zeros, name="xaifn_probe", requires_grad=True)
        self.store = ms.Parameter(zeros.copy(), name="xaifn_store", requires_grad=False)

    def construct(self, x):
        activation = self.layer(x)
        ops.assign(self.store, activation)
        return activation + self.probe


class _LayerTap(nn.Cell):
    """Wraps a layer and records the shape of each of its outputs (eager runs only)."""

    def __init__(self, layer):
        super().__init__(auto_prefix=False)  # a prefix would rename the user's shared Parameters
        self.layer = layer
        self.shapes = []

    def construct(self, x):
        activation = self.layer(x)
        self.shapes.append(tuple(activation.shape))
        return activation


def eval_view(network):
    """A parameter-sharing clone of `network` in eval mode (BatchNorm statistics, no dropout)."""
    memo = {id(p): p for p in network.get_parameters()}
    view = copy.deepcopy(network, memo)
    for _, cell in view.cells_and_names():
        # the copies must not share the original's compiled graphs
        object.__setattr__(cell, "_compile_cache", None)
        object.__setattr__(cell, "_phase_cache", None)
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


def evaluable(net_fn):
    """What an explanation evaluates: an eval-mode view of a Cell, or a plain function as is."""
    return eval_view(net_fn) if isinstance(net_fn, nn.Cell) else net_fn


def _replace(view, predicate, make):
    """Replace, in place in `view`, every child cell `c` with predicate(c) by make(c); count them."""
    count = 0
    for _, parent in list(view.cells_and_names()):
        for key, child in list(parent._cells.items()):  # pylint: disable=protected-access
            if predicate(child):
                _set_child(parent, key, make(child))
                count += 1
    return count


def _set_child(parent, key, new):
    old = parent._cells[key]  # pylint: disable=protected-access
    parent._cells[key] = new  # pylint: disable=protected-access
    for attr, value in vars(parent).items():  # containers keep a list of their cells too
        if isinstance(value, list) and any(c is old for c in value):
            setattr(parent, attr, [new if c is old else c for c in value])


def relu_rule_view(network, rule):
    """A parameter-sharing eval-mode view of `network` whose `nn.ReLU` cells follow `rule`.

    `rule` is one of ``"gradient"``, ``"deconvolution"``, ``"guided_backprop"`` (methods.md).
    Only ReLUs that are `nn.ReLU` cells can be reached; a network with none raises ValueError,
    since the rule would silently do nothing.

    Example:
        >>> import xaifn
        >>> from xaifn.models import LeNet5
        >>> view = xaifn.relu_rule_view(LeNet5(), "guided_backprop")
        >>> type(view.relu).__name__
        '_RuleReLU'
    """
    if rule not in RELU_RULES:
        raise ValueError(f"`rule` must be one of {RELU_RULES}, got {rule!r}.")
    view = eval_view(network)
    found = _replace(view, lambda c: type(c) is nn.ReLU, lambda c: _RuleReLU(rule))
    if found == 0:
        raise ValueError(f"The network ({type(network).__name__}) has no nn.ReLU cell, so the "
                         f"{rule} rule cannot be applied; ReLUs called as functions "
                         "(ops.relu) inside construct cannot be reached. Use nn.ReLU cells.")
    return view


@contextlib.contextmanager
def _pynative():
    """Run eagerly in PYNATIVE_MODE, restoring the caller's mode afterwards."""
    mode = ms.get_context("mode")
    if mode != ms.PYNATIVE_MODE:
        ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        yield
    finally:
        if mode != ms.PYNATIVE_MODE:
            ms.set_context(mode=mode)


def output_shape(net_fn, sample_shape, dtype):
    """Shape of net_fn's output on one zero sample of `sample_shape` (C, H, W), run eagerly."""
    with _pynative():
        return tuple(net_fn(ms.Tensor(np.zeros((1,) + tuple(sample_shape)), dtype)).shape)


def trace_layer(network, layer_name, sample_shape, dtype):
    """Run a view of `network` once on a zero sample; return (output shape, layer output shape).

    Raises ValueError if the layer is not called exactly once or its output is not 4-D.
    """
    view = eval_view(network)
    tap = _LayerTap(dict(view.cells_and_names())[layer_name])
    _replace(view, lambda c: c is tap.layer, lambda c: tap)
    with _pynative():
        out = tuple(view(ms.Tensor(np.zeros((1,) + tuple(sample_shape)), dtype)).shape)
    if len(tap.shapes) != 1:
        raise ValueError(f"`layer` {layer_name!r} is called {len(tap.shapes)} times in one forward "
                         "pass; GradCAM needs a layer that is called exactly once.")
    if len(tap.shapes[0]) != 4:
        raise ValueError(f"`layer` {layer_name!r} outputs shape {tap.shapes[0]}; GradCAM needs a "
                         "layer with a 4-D (N, K, h, w) output.")
    return out, tap.shapes[0]


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
