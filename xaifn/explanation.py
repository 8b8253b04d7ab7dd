"""The class API of the original MindSpore XAI package, as thin wrappers over xaifn's functions.

Each class validates its constructor arguments, keeps them, and delegates every call to the
functional core. Unlike the original, the user's network is never switched to eval mode: the
explanation is computed on an eval-mode view that shares the network's Parameters, so the
network's own flags are left as they were.
"""
from xaifn import _checks
from xaifn.gradcam import gradcam
from xaifn.gradients import deconvolution, gradient, guided_backprop


class _Attribution:
    """An explainer bound to a network: `explainer(inputs, targets)` -> (N, 1, H, W) Tensor."""

    _method = None

    def __init__(self, network):
        self._network = _checks.check_cell(network, "network")

    @property
    def network(self):
        """The network being explained."""
        return self._network

    def __call__(self, inputs, targets):
        return type(self)._method(self._network, inputs, targets)


class Gradient(_Attribution):
    """Gradient saliency (`xaifn.gradient`): max over channels of |d f(x)[t] / dx|.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import Gradient
        >>> from xaifn.models import LeNet5
        >>> saliency = Gradient(LeNet5(10, num_channel=3))(ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32), 5)
        >>> saliency.shape
        (1, 1, 32, 32)
    """

    _method = staticmethod(gradient)


class Deconvolution(_Attribution):
    """Deconvolution (`xaifn.deconvolution`): positive gradients only through each `nn.ReLU` cell.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import Deconvolution
        >>> from xaifn.models import LeNet5
        >>> saliency = Deconvolution(LeNet5())(ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32), 5)
        >>> saliency.shape
        (1, 1, 32, 32)
    """

    _method = staticmethod(deconvolution)


class GuidedBackprop(_Attribution):
    """Guided Backpropagation (`xaifn.guided_backprop`).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import GuidedBackprop
        >>> from xaifn.models import LeNet5
        >>> saliency = GuidedBackprop(LeNet5())(ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32), 5)
        >>> saliency.shape
        (1, 1, 32, 32)
    """

    _method = staticmethod(guided_backprop)


class GradCAM(_Attribution):
    """GradCAM (`xaifn.gradcam`) at the cell named `layer` ('' = the input).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import GradCAM
        >>> from xaifn.models import LeNet5
        >>> gradcam = GradCAM(LeNet5(), layer="conv2")
        >>> gradcam(ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32), 5).shape
        (1, 1, 32, 32)
    """

    def __init__(self, network, layer=""):
        super().__init__(network)
        _checks.check_layer_name(network, layer)
        self._layer = layer

    def __call__(self, inputs, targets):
        return gradcam(self._network, inputs, targets, self._layer)
