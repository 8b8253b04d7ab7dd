"""GradCAM (Selvaraju et al., 2017) on a named layer's output A (N, K, h, w):

    g = d(sum_n f(x)[n, t_n]) / dA,   alpha_k = mean_hw g_k,   cam = ReLU(sum_k alpha_k A_k),

resized to the input's (H, W) by float bilinear interpolation with half-pixel centres.
`layer=''` means the input itself (A = x).
"""
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks, _views
from xaifn.gradients import input_gradient, target_logit_sum


def layer_probe_view(network, layer, activation_shape):
    """A parameter-sharing eval-mode view of `network` that exposes the output of `layer`.

    `activation_shape` is the layer's output shape (N, K, h, w) for the batch to be explained.
    Build it once, outside any compiled code, and pass it to `layer_activation_gradient`.
    """
    return _views.layer_probe_view(network, layer, activation_shape)


def layer_activation_gradient(probed, inputs, targets):
    """(A, dA): the probed layer's output and d(sum_n f(x)[n, t_n]) / dA. Traceable.

    `probed` comes from `layer_probe_view`, built for this batch's activation shape.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> probed = xaifn.layer_probe_view(LeNet5(), "conv2", (2, 16, 10, 10))
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> a, g = xaifn.layer_activation_gradient(probed, x, ms.Tensor([1, 2], ms.int32))
        >>> a.shape, g.shape
        ((2, 16, 10, 10), (2, 16, 10, 10))
    """
    probe = probed.xaifn_probe

    def score(x, labels):
        return target_logit_sum(probed, x, labels)
    (grads,) = ms.grad(score, grad_position=None, weights=[probe.probe])(inputs, targets)
    return probe.store.value(), grads


def gradcam_map(activation, grads, size):
    """ReLU(sum_k mean_hw(dA_k) A_k) resized bilinearly to `size` (H, W): (N, 1, H, W). Traceable."""
    alpha = grads.mean(axis=(2, 3), keep_dims=True)
    cam = ops.relu((alpha * activation).sum(axis=1, keepdims=True))
    if tuple(cam.shape[2:]) == tuple(size):
        return cam
    return ops.interpolate(cam, size=size, mode="bilinear", align_corners=False)


def _compiled_input_cam(view):
    def kernel(inputs, targets):
        return gradcam_map(inputs, input_gradient(view, inputs, targets), inputs.shape[2:])
    return _cache.compiled(kernel)


def _compiled_layer_cam(probed):
    def kernel(inputs, targets):
        activation, grads = layer_activation_gradient(probed, inputs, targets)
        return gradcam_map(activation, grads, inputs.shape[2:])
    return _cache.compiled(kernel)


def gradcam(net, inputs, targets, layer=""):
    """GradCAM saliency at the cell named `layer` (a name of `net.cells_and_names()`), (N, 1, H, W).

    The layer must be called exactly once per forward pass and output a 4-D tensor; '' explains
    at the input. The backward pass stops at the layer.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import SmallResNet
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 48), ms.float32)
        >>> xaifn.gradcam(SmallResNet(), x, 5, layer="stages.2").shape  # non-square is fine
        (2, 1, 32, 48)
    """
    _checks.check_cell(net, "net")
    _checks.check_layer_name(net, layer)
    _checks.check_inputs(inputs)
    if layer == "":
        labels = _checks.check_call(net, inputs, targets, name="net")
        kernel = _cache.cached(net, ("gradcam", ""), lambda: _compiled_input_cam(_cache.evaluable(net)))
        return kernel(inputs, labels)
    sample = (tuple(inputs.shape[1:]), inputs.dtype)
    out_shape, act_shape = _cache.cached(net, ("trace", layer) + sample,
                                         lambda: _views.trace_layer(net, layer, *sample))
    labels = _checks.check_targets(targets, inputs.shape[0], _checks.check_output_width(out_shape, "net"))
    act_shape = (inputs.shape[0],) + act_shape[1:]
    kernel = _cache.cached(net, ("gradcam", layer, act_shape, inputs.dtype),
                           lambda: _compiled_layer_cam(layer_probe_view(net, layer, act_shape)))
    return kernel(inputs, labels)
