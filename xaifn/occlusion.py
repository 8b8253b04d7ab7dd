"""Occlusion (Zeiler & Fergus, 2014): for windows w (all channels set to `baseline`),

    d_w = sigma(f(x))[t] - sigma(f(x_w))[t],     map(pixel) = mean of d_w over the windows covering it

(0 where no window covers the pixel). The sign is kept; `explanation.Occlusion` returns abs(map).
Default window and stride per side d: d // 32 for both if d > 32, else window 3 and stride 1; a
default stride never exceeds the window. A stride larger than the window would leave rows or
columns between windows that no window covers (silently 0): it is refused with a ValueError.
Only windows that fit inside the image are used, so the last rows and columns are covered only
when (d - window) is a multiple of the stride.
"""
import numpy as np
import mindspore as ms

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, bytes_per_image, images_per_step, perturbation_sums, target_scores
from xaifn.masks import OcclusionWindows
from xaifn.rise import probability_fn


def default_window(size):
    """The original package's window and stride for an image side `size` (window <= size)."""
    return (size // 32, size // 32) if size > 32 else (min(3, size), 1)


@_cache.one_call
def occlusion(net_fn, activation_fn, inputs, targets, window=None, stride=None, baseline=0.0,
              chunk=DEFAULT_CHUNK, *, output=None):
    """Signed Occlusion saliency (N, l, H, W).

    Args:
        net_fn, activation_fn, inputs, targets, chunk: as in `xaifn.rise`.
        window: (kh, kw) or int; default per side as in the module docstring.
        stride: (sh, sw) or int, at most the window per side; default per side as in the module
            docstring.
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
    net_fn = _checks.check_explained(net_fn, output)
    inputs, labels, chunk = _checks.check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk)
    size = tuple(inputs.shape[2:])
    defaults = [default_window(side) for side in size]
    window = _checks.check_window(tuple(d[0] for d in defaults) if window is None else window,
                                  "window", size)
    if stride is None:
        stride = tuple(min(d[1], w) for d, w in zip(defaults, window))
    stride = _checks.check_window(stride, "stride", size)
    if stride[0] > window[0] or stride[1] > window[1]:
        raise ValueError(f"`stride` {stride} must not exceed `window` {window}: pixels between the "
                         "windows would never be occluded (and get 0).")
    baseline = _checks.check_real(baseline, "baseline")
    windows = OcclusionWindows(size, window, stride)
    build = lambda: probability_fn(_cache.evaluable(net_fn), activation_fn)  # noqa: E731
    key = (net_fn, ("occlusion", _cache.callable_key(activation_fn)))
    original = target_scores(build, inputs, labels, key)                       # (N, l)
    step = images_per_step(chunk, bytes_per_image(net_fn, inputs))
    occluded = perturbation_sums(build, inputs, labels, windows, step, key,    # sum_w p_w * W_w
                                 keep=False, baseline=baseline)
    count = windows.coverage                                                   # windows per pixel
    divisor = ms.Tensor(np.maximum(count, 1), occluded.dtype)                    # uncovered: 0 / 1
    differences = original.reshape(original.shape + (1, 1)) * ms.Tensor(count, occluded.dtype) - occluded
    return differences / divisor
