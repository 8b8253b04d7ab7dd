"""The CAM family at a named layer's output A (N, K, h, w), with g = d(sum_n f(x)[n, t_n]) / dA.

Each variant is a map before the ReLU, cam = ReLU(map), resized to the input's (H, W) by bilinear
interpolation like `xaifn.gradcam` (`resize=False`: the raw (N, 1, h, w) map; no normalisation)::

    GradCAM     sum_k mean_ij(g_k) A_k                                       (xaifn.gradcam)
    GradCAM++   sum_k w_k A_k,  w_k = sum_ij relu(g_kij) a_kij,
                a = g^2 / (2 g^2 + sum_ij(A_k) g^3)   (0 where the denominator is 0)
    XGradCAM    sum_k w_k A_k,  w_k = sum_ij A_kij g_kij / sum_ij A_kij   (0 where that is 0)
    LayerCAM    sum_k relu(g_k) * A_k                  (element-wise)
    HiResCAM    sum_k g_k * A_k                        (element-wise)
    EigenCAM    X_c v_1: the pixels' activations X (hw, K), centred over the pixels, projected
                on their first right singular vector v_1, its sign chosen so that sum_k v_1k >= 0

ScoreCAM is in `xaifn.scorecam` (it needs forward passes, not gradients). Every variant runs
through `xaifn.gradcam`'s layer machinery (`layer_cam`: validation, tracing, `reshape` of token or
channel-last outputs, one compiled kernel per network, layer, shape and variant); EigenCAM, which
reads no gradient, through its forward-only twin `layer_forward` (no backward pass).
"""
from mindspore import ops

from xaifn import _cache, _checks
from xaifn.gradcam import activation_map, cam_map, layer_cam, layer_forward


def _safe_divide(numerator, denominator):
    """numerator / denominator, and 0 where the denominator is 0."""
    nonzero = denominator != 0
    return ops.where(nonzero, numerator / ops.where(nonzero, denominator, ops.ones_like(denominator)),
                     ops.zeros_like(numerator))


def _weighted_channels(weights, activation):
    return (weights * activation).sum(axis=1, keepdims=True)


def gradcam_plus_plus_cam(activation, grads):
    """GradCAM++ (Chattopadhay et al., 2018, eq. 19) before the ReLU. Traceable."""
    g2 = grads * grads
    alpha = _safe_divide(g2, 2 * g2 + activation.sum(axis=(2, 3), keepdims=True) * g2 * grads)
    return _weighted_channels((ops.relu(grads) * alpha).sum(axis=(2, 3), keepdims=True), activation)


def xgradcam_cam(activation, grads):
    """XGradCAM (Fu et al., 2020) before the ReLU. Traceable."""
    weights = _safe_divide((activation * grads).sum(axis=(2, 3), keepdims=True),
                           activation.sum(axis=(2, 3), keepdims=True))
    return _weighted_channels(weights, activation)


def layercam_cam(activation, grads):
    """LayerCAM (Jiang et al., 2021) before the ReLU. Traceable."""
    return (ops.relu(grads) * activation).sum(axis=1, keepdims=True)


def hirescam_cam(activation, grads):
    """HiResCAM (Draelos & Carin, 2020) before the ReLU. Traceable."""
    return (grads * activation).sum(axis=1, keepdims=True)


def eigencam_cam(activation):
    """EigenCAM (Muhammad & Yeasin, 2020) before the ReLU: the projection of the centred pixel
    activations on their first principal direction, signed as in the module docstring. Traceable."""
    n, k, h, w = activation.shape
    pixels = activation.reshape(n, k, h * w).transpose(0, 2, 1)               # (N, hw, K)
    centred = pixels - pixels.mean(axis=1, keep_dims=True)
    _, _, v = ops.svd(centred, full_matrices=False)                           # v: (N, K, K)
    first = v[:, :, 0:1]                                                      # (N, K, 1)
    sign = ops.where(first.sum(axis=1, keepdims=True) < 0, -ops.ones_like(first[:, :1]),
                     ops.ones_like(first[:, :1]))
    return ops.matmul(centred, first * sign).reshape(n, 1, h, w)


def _variant(net, inputs, targets, layer, reshape, resize, cam_fn, output):
    _checks.check_bool(resize, "resize")
    return layer_cam(net, inputs, targets, layer, reshape, cam_map(cam_fn, resize), output)


def gradcam_plus_plus(net, inputs, targets, layer="", reshape=None, resize=True, *, output=None):
    """GradCAM++ at the cell named `layer`: (N, 1, H, W), or (N, 1, h, w) with `resize=False`.

    Arguments as in `xaifn.gradcam` (`reshape` for token or channel-last layer outputs, `output`
    for networks returning several outputs).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.gradcam_plus_plus(LeNet5(), x, 1, layer="conv2").shape
        (2, 1, 32, 32)
    """
    return _variant(net, inputs, targets, layer, reshape, resize, gradcam_plus_plus_cam, output)


def xgradcam(net, inputs, targets, layer="", reshape=None, resize=True, *, output=None):
    """XGradCAM at the cell named `layer`; arguments and shapes as in `xaifn.gradcam_plus_plus`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.xgradcam(LeNet5(), x, 1, layer="conv2", resize=False).shape
        (2, 1, 10, 10)
    """
    return _variant(net, inputs, targets, layer, reshape, resize, xgradcam_cam, output)


def layercam(net, inputs, targets, layer="", reshape=None, resize=True, *, output=None):
    """LayerCAM at the cell named `layer`; arguments and shapes as in `xaifn.gradcam_plus_plus`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.layercam(LeNet5(), x, [1, 2], layer="conv1").shape
        (2, 1, 32, 32)
    """
    return _variant(net, inputs, targets, layer, reshape, resize, layercam_cam, output)


def hirescam(net, inputs, targets, layer="", reshape=None, resize=True, *, output=None):
    """HiResCAM at the cell named `layer`; arguments and shapes as in `xaifn.gradcam_plus_plus`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.hirescam(LeNet5(), x, 1, layer="conv2").shape
        (2, 1, 32, 32)
    """
    return _variant(net, inputs, targets, layer, reshape, resize, hirescam_cam, output)


@_cache.one_call
def eigencam(net, inputs, targets, layer="", reshape=None, resize=True, *, output=None):
    """EigenCAM at the cell named `layer` (`targets` are validated but do not change the map; one
    forward pass, no backward); arguments and shapes as in `xaifn.gradcam_plus_plus`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.eigencam(LeNet5(), x, 1, layer="conv2").shape
        (2, 1, 32, 32)
    """
    _checks.check_bool(resize, "resize")
    return layer_forward(net, inputs, targets, layer, reshape, activation_map(eigencam_cam, resize), output)[0]
