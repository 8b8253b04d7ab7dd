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


def layer_activation(probed, inputs):
    """The probed layer's output A for `inputs` (forward pass only). Traceable."""
    probed(inputs)
    return probed.xaifn_probe.store.value()


def resize_map(cam, size):
    """(N, l, h, w) maps resized to `size` (H, W) by float bilinear interpolation with half-pixel
    centres (align_corners=False). Traceable."""
    if tuple(cam.shape[2:]) == tuple(size):
        return cam
    return ops.interpolate(cam, size=size, mode="bilinear", align_corners=False)


def gradcam_cam(activation, grads):
    """sum_k mean_hw(dA_k) A_k, before the ReLU: (N, 1, h, w). Traceable."""
    return (grads.mean(axis=(2, 3), keep_dims=True) * activation).sum(axis=1, keepdims=True)


def gradcam_map(activation, grads, size):
    """ReLU(sum_k mean_hw(dA_k) A_k) resized bilinearly to `size` (H, W): (N, 1, H, W). Traceable."""
    return resize_map(ops.relu(gradcam_cam(activation, grads)), size)


def layer_setup(net, inputs, targets, layer, allow_2d=False):
    """Validate a layer method's arguments; return (labels (N, l), activation shape of the batch).

    The activation shape is None for `layer=''` (the input itself).
    """
    _checks.check_cell(net, "net")
    _checks.check_layer_name(net, layer)
    _checks.check_inputs(inputs)
    if layer == "":
        return _checks.check_call(net, inputs, targets, allow_2d, name="net"), None
    sample = (tuple(inputs.shape[1:]), inputs.dtype)
    out_shape, act_shape = _cache.cached(net, ("trace", layer) + sample,
                                         lambda: _views.trace_layer(net, layer, *sample))
    labels = _checks.check_targets(targets, inputs.shape[0], _checks.check_output_width(out_shape, "net"),
                                   allow_2d)
    return labels, (inputs.shape[0],) + act_shape[1:]


def activation_gradient_fn(net, layer, act_shape, gradients=True):
    """A traceable (inputs, labels) -> (A, dA) at `layer` of a view of `net` (dA None if not
    `gradients`: forward pass only). Build it outside compiled code."""
    if layer == "":
        view = _cache.evaluable(net)

        def at_input(inputs, labels):
            return inputs, (input_gradient(view, inputs, labels) if gradients else None)
        return at_input
    probed = layer_probe_view(net, layer, act_shape)

    def at_layer(inputs, labels):
        if gradients:
            return layer_activation_gradient(probed, inputs, labels)
        return layer_activation(probed, inputs), None
    return at_layer


def class_activation_map(net, inputs, targets, layer, cam_fn, resize=True, gradients=True):
    """ReLU(cam_fn(A, dA)) at `layer`, resized to the input's (H, W) unless `resize` is False:
    the shared entry point of the CAM family (`xaifn.gradcam`, `xaifn.gradcam_plus_plus`, ...).

    `cam_fn` is a traceable (A, dA) -> (N, 1, h, w) map before the ReLU (dA is None when
    `gradients` is False); compiled once per network, layer, batch shape and `cam_fn`.
    """
    labels, act_shape = layer_setup(net, inputs, targets, layer)
    _checks.check_bool(resize, "resize")

    def build():
        pair = activation_gradient_fn(net, layer, act_shape, gradients)

        def kernel(x, t):
            activation, grads = pair(x, t)
            cam = ops.relu(cam_fn(activation, grads))
            return resize_map(cam, x.shape[2:]) if resize else cam
        return _cache.compiled(kernel)
    key = ("cam", cam_fn, layer, act_shape, inputs.dtype, resize)
    return _cache.cached(net, key, build)(inputs, labels)


def gradcam(net, inputs, targets, layer="", resize=True):
    """GradCAM saliency at the cell named `layer` (a name of `net.cells_and_names()`), (N, 1, H, W).

    The layer must be called exactly once per forward pass and output a 4-D tensor; '' explains
    at the input. The backward pass stops at the layer. `resize=False` returns the map at the
    layer's resolution (N, 1, h, w).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import SmallResNet
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 48), ms.float32)
        >>> xaifn.gradcam(SmallResNet(), x, 5, layer="stages.2").shape  # non-square is fine
        (2, 1, 32, 48)
    """
    return class_activation_map(net, inputs, targets, layer, gradcam_cam, resize)
