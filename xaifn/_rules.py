"""Backward rules at elementwise activations: the rule/composite split of methods.md.

With R the gradient arriving at an activation's output and z its input, a *rule* says what is
passed back to z (written once, for every elementwise activation f):

    gradient          R * f'(z)            (the activation as it is)
    deconvolution     max(R, 0)            (the forward is ignored)
    guided_backprop   max(R * f'(z), 0)    (for ReLU: max(R * 1[z > 0], 0))

A *composite* says at which activations a rule applies: `activations="all"` (every elementwise
activation cell of `ACTIVATION_CELLS`), `"relu"` (ReLU-like cells only: `nn.ReLU` and its
subclasses, `nn.ReLU6`; Captum's choice) or a tuple of Cell types the user declares elementwise.

The rules are installed by swapping activation cells for wrappers in a view (`xaifn._views`), so
an activation called as a function inside some ``construct`` (``ops.relu(x)``, ``ops.ReLU()(x)``,
``ops.gelu``) would silently keep the plain gradient. `check_reach` therefore compiles the view's
forward once and reads its graph: every activation primitive on a path from the input must lie
inside a wrapped cell, or the method is refused with a ValueError naming the cell where it runs.
"""
import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore.train import anf_ir_pb2

from xaifn import _views

RULES = ("gradient", "deconvolution", "guided_backprop")
COMPOSITES = ("all", "relu")

#: Elementwise activation cells (subclasses included), by family. Optional libraries' cells are
#: named by "module.QualName", so that they are recognised without being imported.
ACTIVATION_CELLS = {
    "relu": (nn.ReLU, nn.ReLU6),
    "other": (nn.LeakyReLU, nn.GELU, nn.FastGelu, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.HSwish, nn.HSigmoid,
              nn.ELU, nn.SeLU, nn.CELU, nn.Mish, nn.Softsign, nn.Hardtanh, nn.LogSigmoid, nn.Tanhshrink,
              nn.SoftShrink, nn.HShrink, "mindcv.models.layers.activation.Swish"),
}

#: Primitives (graph op types) that are elementwise activations, by family: what `check_reach`
#: looks for. ``Erf`` is there because ``ops.gelu(x)`` is composed of it.
ACTIVATION_OPS = {
    "relu": frozenset({"ReLU", "ReLU6", "ReLUV2", "ReLUV3"}),
    "other": frozenset({"GeLU", "FastGeLU", "SiLU", "Sigmoid", "Tanh", "HSwish", "HSigmoid", "Elu", "SeLU",
                        "CeLU", "Mish", "Softsign", "Softplus", "SoftShrink", "HShrink", "Erf", "LeakyReLU",
                        "PReLU", "Swish"}),
}


def _positive(grad):
    return ops.maximum(grad, 0)


class _Deconvolution(nn.Cell):
    """f(z) forward; max(R, 0) backward."""

    def __init__(self, act):
        super().__init__(auto_prefix=False)  # a prefix would rename shared Parameters
        self.act = act

    def construct(self, x):
        return self.act(x)

    def bprop(self, x, out, dout):  # pylint: disable=unused-argument
        return (ops.maximum(dout, 0),)


class _GuidedBackprop(nn.Cell):
    """f(z) forward; max(R * f'(z), 0) backward: the positive part is taken after f's own backward."""

    def __init__(self, act):
        super().__init__(auto_prefix=False)
        self.act = act
        self.positive = ops.InsertGradientOf(_positive)

    def construct(self, x):
        return self.act(self.positive(x))


class _Marked(nn.Cell):
    """f(z + 0) with a Parameter 0: the activation's graph node is its own, inside this scope."""

    def __init__(self, act, index):
        super().__init__(auto_prefix=False)
        self.act = act
        self.zero = ms.Parameter(ms.Tensor(0.0, ms.float32), name=f"xaifn_marker_{index}", requires_grad=False)

    def construct(self, x):
        return self.act(x + self.zero.astype(x.dtype))


_WRAPPERS = {"deconvolution": _Deconvolution, "guided_backprop": _GuidedBackprop}


def _names(cls):
    return {f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__}


def _matches(cell, kinds):
    return any(isinstance(cell, k) if isinstance(k, type) else k in _names(type(cell)) for k in kinds)


def check_activations(activations):
    """Canonical `activations`: "all", "relu" or a non-empty tuple of Cell subclasses."""
    if isinstance(activations, str):
        if activations not in COMPOSITES:
            raise ValueError(f"`activations` must be one of {COMPOSITES} or a tuple of Cell types, "
                             f"got {activations!r}.")
        return activations
    kinds = tuple(activations) if isinstance(activations, (tuple, list)) else (activations,)
    if not kinds or not all(isinstance(k, type) and issubclass(k, nn.Cell) for k in kinds):
        raise TypeError(f"`activations` must be 'all', 'relu' or a tuple of nn.Cell subclasses, got {activations!r}.")
    return kinds


def _selection(activations):
    """(cell kinds carrying the rule, graph op types that must then lie inside them)."""
    if activations == "relu":
        return ACTIVATION_CELLS["relu"], ACTIVATION_OPS["relu"]
    everything = ACTIVATION_OPS["relu"] | ACTIVATION_OPS["other"]
    if activations == "all":
        return ACTIVATION_CELLS["relu"] + ACTIVATION_CELLS["other"], everything
    return activations, everything


def _wrap(view, kinds, make):
    """Swap, in place, every cell of `view` matching `kinds` for make(cell) (not descending into
    it); return the dotted names of the swapped cells."""
    swapped = []

    def visit(parent, prefix):
        for key, child in list(parent._cells.items()):  # pylint: disable=protected-access
            if child is None:
                continue
            name = f"{prefix}{key}"
            if _matches(child, kinds):
                _views.replace_child(parent, key, make(child, len(swapped)))
                swapped.append(name)
            else:
                visit(child, name + ".")
    visit(view, "")
    return swapped


def rule_view(network, rule, activations="all"):
    """A parameter-sharing eval-mode view of `network` whose activation cells follow `rule`.

    `rule` is one of ``"gradient"``, ``"deconvolution"``, ``"guided_backprop"`` (methods.md);
    `activations` chooses the cells that carry it (module docstring). Only cells can be reached:
    `xaifn.deconvolution` and `xaifn.guided_backprop` check, with `check_reach`, that no activation
    is called as a function on the way from the input; a view built here is not checked.

    Example:
        >>> import xaifn
        >>> from xaifn.models import LeNet5
        >>> view = xaifn.rule_view(LeNet5(), "guided_backprop")
        >>> type(view.relu).__name__, type(view.relu.act).__name__
        ('_GuidedBackprop', 'ReLU')
    """
    if rule not in RULES:
        raise ValueError(f"`rule` must be one of {RULES}, got {rule!r}.")
    kinds, _ = _selection(check_activations(activations))
    view = _views.eval_view(network)
    if rule != "gradient":
        _wrap(view, kinds, lambda act, _: _WRAPPERS[rule](act))
    return view


def _forward_graph(view, sample_shape, dtype):
    """The nodes of `view`'s compiled forward graph on one zero sample, and the name of its input."""
    with _views.pynative():
        view.compile(ms.Tensor(np.zeros((1,) + tuple(sample_shape)), dtype))
    model = anf_ir_pb2.ModelProto()
    model.ParseFromString(view.get_func_graph_proto())
    return list(model.graph.node), model.graph.parameters[0].name


def _scope_path(scope):
    """'Default/features-SequentialCell/0-ReLU' -> ('features.0', ['SequentialCell', 'ReLU'])."""
    parts = [p.split("-", 1) for p in scope.split("/")[1:] if "-" in p]
    return ".".join(p[0] for p in parts), [p[1] for p in parts]


def check_reach(network, activations, sample_shape, dtype, method):
    """Raise ValueError unless every activation primitive the forward applies to (a function of) the
    input lies inside a cell chosen by `activations`, and at least one does.

    Compiles the forward once, with each chosen cell marked, and reads the graph's op types and
    scopes; activations on input-independent paths (position-bias MLPs) do not matter and are
    ignored.
    """
    activations = check_activations(activations)
    kinds, op_types = _selection(activations)
    view = _views.eval_view(network)
    marked = _wrap(view, kinds, _Marked)
    known = ACTIVATION_CELLS["relu"] + ACTIVATION_CELLS["other"] + (() if isinstance(activations, str) else activations)
    # activation cells left out by the user's choice pass the plain gradient: not a silent gap
    excluded = tuple(name + "." for name, cell in view.cells_and_names() if name and _matches(cell, known))
    nodes, source = _forward_graph(view, sample_shape, dtype)
    dependent, reached = {source}, 0
    for node in nodes:
        if not any(i.name in dependent for i in node.input):
            continue
        dependent.add(node.name)
        path, classes = _scope_path(node.scope)
        if isinstance(network, _views.Output):
            path = path[len(_views.OUTPUT_PREFIX):] if path.startswith(_views.OUTPUT_PREFIX) else ""
        if "_Marked" in classes:
            reached += 1
            continue
        if node.op_type not in op_types or (path + ".").startswith(excluded):
            continue
        where = f"cell {path!r} ({classes[-1]})" if path else f"the network's own construct ({type(_views.unwrapped(network)).__name__})"
        raise ValueError(
            f"{method}: the forward pass applies the activation {node.op_type} in {where} as a function, "
            f"where the {method} rule cannot be installed; the map would be silently partial. Use an "
            "activation cell (e.g. nn.ReLU(), nn.GELU()) in that construct, or, if that cell is an "
            "elementwise activation, pass its type in `activations`.")
    if not reached:
        chosen = "ReLU-like" if activations == "relu" else "chosen" if activations != "all" else "elementwise"
        found = f" ({len(marked)} such cells exist but none is applied to the input)" if marked else ""
        hint = " Pass activations='all' to apply the rule at every elementwise activation." \
            if activations == "relu" else ""
        raise ValueError(f"{method}: the network ({type(_views.unwrapped(network)).__name__}) applies no {chosen} activation "
                         f"cell to its input{found}, so the {method} rule would change nothing.{hint}")
