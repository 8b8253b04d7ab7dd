"""Occlusion (Zeiler & Fergus, 2014): for windows w (all channels set to `baseline`),

    d_w = sigma(f(x))[t] - sigma(f(x_w))[t],     map(pixel) = mean of d_w over the windows covering it

(0 where no window covers the pixel). The sign is kept; `explanation.Occlusion` returns abs(map).
Default window and stride per side d: d // 32 for both if d > 32, else window 3 and stride 1.
"""
import numpy as np
import mindspore as ms

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, perturbation_sums, target_scores
from xaifn.masks import OcclusionWindows
from xaifn.rise import probability_fn


def default_window(size):
    """The original package's window and stride for an image side `size` (window <= size)."""
    return (size // 32, size // 32) if size > 32 else (min(3, size), 1)


def occlusion(net_fn, activation_fn, inputs, targets, window=None, stride=None, baseline=0.0,
              chunk=DEFAULT_CHUNK, *, output=None):
    """Signed Occlusion saliency (N, l, H, W).

    Args:
        net_fn, activation_fn, inputs, targets, chunk: as in `xaifn.rise`.
        window: (kh, kw) or int; default per side as in the module docstring.
        stride: (sh, sw) or int; default per side as in the module docstring.
        baseline: value written into the occluded window (default 0.0).
        output: which output of a network returning several is explained (`xaifn.gradient`).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from mindspore import nn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> xaifn.occlusion(LeNet5(), nn.Softmax(), x, 1, window=8, stride=4).shape
        (1, 1, 32, 32)
    """
    net_fn = _cache.selected(_checks.check_callable(net_fn, "net_fn"), _checks.check_output(output))
    labels, chunk = _checks.check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk)
    size = tuple(inputs.shape[2:])
    defaults = [default_window(side) for side in size]
    window = _checks.check_window(tuple(d[0] for d in defaults) if window is None else window,
                                  "window", size)
    stride = _checks.check_window(tuple(d[1] for d in defaults) if stride is None else stride,
                                  "stride", size)
    baseline = _checks.check_real(baseline, "baseline")
    windows = OcclusionWindows(size, window, stride)
    build = lambda: probability_fn(_cache.evaluable(net_fn), activation_fn)  # noqa: E731
    key = (net_fn, ("occlusion", activation_fn))
    original = target_scores(build, inputs, labels, key)                       # (N, l)
    occluded = perturbation_sums(build, inputs, labels, windows, chunk, key,   # sum_w p_w * W_w
                                 keep=False, baseline=baseline)
    count = windows.coverage                                                   # windows per pixel
    divisor = ms.Tensor(np.maximum(count, 1), inputs.dtype)                    # uncovered: 0 / 1
    differences = original.reshape(original.shape + (1, 1)) * ms.Tensor(count, inputs.dtype) - occluded
    return differences / divisor
