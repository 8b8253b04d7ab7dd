"""Guided GradCAM (Selvaraju et al., 2017), per channel as Captum's GuidedGradCam:

    GuidedGradCAM = GuidedBackprop gradient (N, C, H, W)  *  GradCAM resized to (H, W) (N, 1, H, W)

signed, no normalisation. The GradCAM factor is `xaifn.gradcam`'s map (bilinear resize).
"""
from xaifn import _cache, _views
from xaifn.gradcam import activation_gradient_fn, gradcam_map, layer_setup
from xaifn.gradients import input_gradient


def _compiled_guided_gradcam(net, layer, act_shape):
    guided = _views.relu_rule_view(net, "guided_backprop")
    pair = activation_gradient_fn(net, layer, act_shape)

    def kernel(inputs, labels):
        activation, grads = pair(inputs, labels)
        return input_gradient(guided, inputs, labels) * gradcam_map(activation, grads, inputs.shape[2:])
    return _cache.compiled(kernel)


def guided_gradcam(net, inputs, targets, layer=""):
    """Guided GradCAM at the cell named `layer`: signed, per channel, (N, C, H, W).

    Arguments as in `xaifn.gradcam`; the network needs `nn.ReLU` cells (as `xaifn.guided_backprop`).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.guided_gradcam(LeNet5(), x, [1, 2], layer="conv2").shape
        (2, 3, 32, 32)
    """
    labels, act_shape = layer_setup(net, inputs, targets, layer)
    kernel = _cache.cached(net, ("guided_gradcam", layer, act_shape, inputs.dtype),
                           lambda: _compiled_guided_gradcam(net, layer, act_shape))
    return kernel(inputs, labels)
