"""Gradient, Deconvolution and Guided Backpropagation.

    map[n] = max_c abs(d(sum_m f(x)[m, t_m]) / dx[n, c])        (N, 1, H, W), no normalisation

with the gradient passed back through each activation f by the method's rule (methods.md):
Gradient R*f'(z), Deconvolution max(R, 0), Guided Backpropagation max(R*f'(z), 0); for ReLU,
f'(z) = 1[z > 0]. `activations` chooses where the rules apply (`xaifn._rules`).
"""
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks, _rules


def target_logit_sum(net_fn, inputs, targets):
    """sum_n f(x)[n, t_n]: the scalar whose gradient every gradient method explains. Traceable."""
    return ops.gather_elements(net_fn(inputs), 1, targets.reshape(-1, 1)).sum()


def input_gradient(net_fn, inputs, targets):
    """Raw per-channel gradient d(sum_n f(x)[n, t_n]) / dx, shape (N, C, H, W). Traceable.

    `targets` is an integer Tensor of N labels (already validated: out-of-range labels would
    select nothing here). Can be called inside a Cell's `construct`, in PYNATIVE or GRAPH mode.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.input_gradient(LeNet5(), x, ms.Tensor([1, 2], ms.int32)).shape
        (2, 3, 32, 32)
    """
    def score(x, labels):  # labels as an argument, not a closure: custom bprops need it
        return target_logit_sum(net_fn, x, labels)
    return ms.grad(score, grad_position=0)(inputs, targets)


def channel_max_abs(grads):
    """The gradient family's channel reduction: max_c abs(g) with the channel axis kept. Traceable."""
    return grads.abs().max(axis=1, keepdims=True)


def saliency(net_fn, inputs, targets):
    """channel_max_abs(input_gradient(...)): the traceable core of the gradient family.

    Pass a `rule_view` of a network as `net_fn` for Deconvolution or Guided Backpropagation.

    Example, a Cell returning logits and a Guided Backpropagation map (any mode):
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from mindspore import nn
        >>> from xaifn.models import LeNet5
        >>> class Explained(nn.Cell):
        ...     def __init__(self, net):
        ...         super().__init__()
        ...         self.net = net
        ...         self.guided = xaifn.rule_view(net, "guided_backprop")
        ...     def construct(self, x, t):
        ...         return self.net(x), xaifn.saliency(self.guided, x, t)
        >>> logits, smap = Explained(LeNet5())(ms.Tensor(np.ones((2, 3, 32, 32)), ms.float32),
        ...                                    ms.Tensor([0, 3], ms.int32))
        >>> smap.shape
        (2, 1, 32, 32)
    """
    return channel_max_abs(input_gradient(net_fn, inputs, targets))


def _compiled_saliency(net_fn):
    def kernel(inputs, targets):
        return saliency(net_fn, inputs, targets)
    return _cache.compiled(kernel)


@_cache.one_call
def _explain(net_fn, inputs, targets, rule, name, activations="all", output=None):
    net_fn = _checks.check_explained(net_fn, output, name)
    labels = _checks.check_call(net_fn, inputs, targets, name=name)
    if rule == "gradient":
        build = lambda: _compiled_saliency(_cache.evaluable(net_fn))  # noqa: E731
        return _cache.cached(net_fn, ("saliency", rule), build)(inputs, labels)
    activations = _rules.check_activations(activations)
    sample = (tuple(inputs.shape[1:]), inputs.dtype)
    _cache.cached(net_fn, ("reach", activations) + sample,
                  lambda: _rules.check_reach(net_fn, activations, *sample, method=rule))
    build = lambda: _compiled_saliency(_rules.rule_view(net_fn, rule, activations))  # noqa: E731
    return _cache.cached(net_fn, ("saliency", rule, activations), build)(inputs, labels)


def gradient(net_fn, inputs, targets, *, output=None):
    """Gradient saliency: max over channels of abs(d f(x)[t] / dx), shape (N, 1, H, W).

    Args:
        net_fn: an `nn.Cell` (evaluated through an eval-mode view sharing its Parameters) or any
            callable from an (N, C, H, W) batch to (N, L) logits.
        inputs: float Tensor (N, C, H, W).
        targets: int, 0-D/1-D integer Tensor, or list of N ints, each in [0, L).
        output: which output of a network returning several is explained: an index, a key, or a
            function choosing it (None: the network must return one Tensor). Every method takes it.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.gradient(LeNet5(), x, 5).shape
        (2, 1, 32, 32)
    """
    return _explain(net_fn, inputs, targets, "gradient", "net_fn", output=output)


def deconvolution(net, inputs, targets, *, activations="all", output=None):
    """Deconvolution saliency: the gradient with max(R, 0) at every activation, (N, 1, H, W).

    `activations`: "all" (default: every elementwise activation cell), "relu" (`nn.ReLU`, its
    subclasses and `nn.ReLU6` only; the others pass the plain gradient) or a tuple of Cell types.
    An activation applied to the input as a function (``ops.relu(x)`` in a construct) cannot take
    the rule: ValueError naming the cell where it runs. `output` as in `xaifn.gradient`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> xaifn.deconvolution(LeNet5(), x, [5]).shape
        (1, 1, 32, 32)
    """
    _checks.check_cell(net, "net")
    return _explain(net, inputs, targets, "deconvolution", "net", activations, output)


def guided_backprop(net, inputs, targets, *, activations="all", output=None):
    """Guided Backpropagation: the gradient with max(R*f'(z), 0) at every activation, (N, 1, H, W).

    `activations` and `output` as in `xaifn.deconvolution`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> xaifn.guided_backprop(LeNet5(), x, ms.Tensor(5, ms.int32)).shape
        (1, 1, 32, 32)
    """
    _checks.check_cell(net, "net")
    return _explain(net, inputs, targets, "guided_backprop", "net", activations, output)


def _compiled_input_x_gradient(net_fn):
    def kernel(inputs, targets):
        return inputs * input_gradient(net_fn, inputs, targets)
    return _cache.compiled(kernel)


@_cache.one_call
def input_x_gradient(net_fn, inputs, targets, *, output=None):
    """Input x Gradient: x * d f(x)[t] / dx, signed per channel, (N, C, H, W).

    Arguments (`output` too) as in `xaifn.gradient`. The traceable core is
    ``inputs * input_gradient(...)``.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.input_x_gradient(LeNet5(), x, [1, 2]).shape
        (2, 3, 32, 32)
    """
    net_fn = _checks.check_explained(net_fn, output)
    labels = _checks.check_call(net_fn, inputs, targets)
    kernel = _cache.cached(net_fn, ("input_x_gradient",),
                           lambda: _compiled_input_x_gradient(_cache.evaluable(net_fn)))
    return kernel(inputs, labels)
