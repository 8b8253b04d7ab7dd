"""Class sensitivity: are the maps for the most and the least likely class different?

    result = (1 - corr(S(x, argmax f(x)), S(x, argmin f(x)))) / 2        (raw logits; higher is better)

Pearson correlation over the pixels of the channel-averaged maps; 0 (result 0.5) where either map is
constant, e.g. all zero, with a RuntimeWarning. Unlike the original, RISE needs no special case:
`explain_fn` is called once per class with one label per sample.
"""
import numpy as np
import mindspore as ms

from xaifn import _cache, _checks
from xaifn.metrics._common import as_tensor, row_pearson


@_cache.one_call
def class_sensitivity(explain_fn, net_fn, inputs):
    """(1 - corr(S_max, S_min)) / 2 per sample (N,), see the module docstring.

    Args:
        explain_fn: (inputs, targets) -> maps (N, c, H, W), e.g. ``functools.partial(xaifn.gradient, net)``.
        net_fn: the network (an `nn.Cell`, run through its eval-mode view, or a callable) giving the logits.
        inputs: float Tensor (N, C, H, W).

    Example:
        >>> import functools, numpy as np, mindspore as ms, xaifn
        >>> from xaifn.metrics import class_sensitivity
        >>> from xaifn.models import LeNet5
        >>> net = LeNet5()
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> class_sensitivity(functools.partial(xaifn.gradient, net), net, x).shape
        (2,)
    """
    _checks.check_callable(explain_fn, "explain_fn")
    _checks.check_call(net_fn, inputs, 0)
    if _checks.check_output_width(_checks.profile(net_fn, inputs).output_shape) < 2:
        raise ValueError("class sensitivity compares the maps of the most and the least likely class: `net_fn` "
                         "must have at least 2 outputs, got 1.")
    forward = _cache.cached(net_fn, ("logits",), lambda: _cache.compiled(_cache.evaluable(net_fn)))
    logits = forward(inputs)
    most, least = (ms.Tensor(f(logits.asnumpy(), axis=1).astype(np.int32)) for f in (np.argmax, np.argmin))
    maps = [_checks.check_saliency(explain_fn(inputs, labels), inputs.shape[0], inputs.shape[2:],
                                   name="explain_fn(inputs, targets)") for labels in (most, least)]
    n = inputs.shape[0]
    correlation = row_pearson(maps[0].reshape(n, -1), maps[1].reshape(n, -1), "a saliency map")
    return as_tensor((1 - correlation) / 2)
