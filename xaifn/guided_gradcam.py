"""Guided GradCAM (Selvaraju et al., 2017), per channel as Captum's GuidedGradCam:

    GuidedGradCAM = GuidedBackprop gradient (N, C, H, W)  *  GradCAM resized to (H, W) (N, 1, H, W)

signed, no normalisation. The GradCAM factor is `xaifn.gradcam`'s map (bilinear resize); the
Guided Backpropagation gradient is `xaifn.guided_backprop`'s before its channel reduction.
"""
from xaifn import _cache, _checks, _rules
from xaifn.gradcam import gradcam
from xaifn.gradients import input_gradient


def _compiled_guided_gradient(view):
    def kernel(inputs, labels):
        return input_gradient(view, inputs, labels)
    return _cache.compiled(kernel)


@_cache.one_call
def guided_gradcam(net, inputs, targets, layer="", reshape=None, activations="all", *, output=None):
    """Guided GradCAM at the cell named `layer`: signed, per channel, (N, C, H, W).

    `layer`, `reshape`, `output` as in `xaifn.gradcam`; `activations` as in `xaifn.guided_backprop`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.guided_gradcam(LeNet5(), x, [1, 2], layer="conv2").shape
        (2, 3, 32, 32)
    """
    _checks.check_cell(net, "net")
    _checks.check_layer_name(net, layer)
    activations = _rules.check_activations(activations)
    explained = _checks.check_explained(net, output, "net")
    labels = _checks.check_call(explained, inputs, targets, name="net")
    sample = (tuple(inputs.shape[1:]), inputs.dtype)
    _cache.cached(explained, ("reach", activations) + sample,
                  lambda: _rules.check_reach(explained, activations, *sample, method="guided_backprop"))
    cam = gradcam(net, inputs, targets, layer, reshape, output=output)         # (N, 1, H, W)
    guided = _cache.cached(explained, ("guided_gradcam", activations), lambda: _compiled_guided_gradient(
        _rules.rule_view(explained, "guided_backprop", activations)))(inputs, labels)
    return guided * cam
