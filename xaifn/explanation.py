"""The class API of the original MindSpore XAI package, as thin wrappers over xaifn's functions.

Each class validates its constructor arguments, keeps them, and delegates every call to the
functional core. Unlike the original, the user's network is never switched to eval mode: the
explanation is computed on an eval-mode view that shares the network's Parameters, so the
network's own flags are left as they were.
"""
import numpy as np

from xaifn import _checks
from xaifn.gradcam import gradcam
from xaifn.gradients import deconvolution, gradient, guided_backprop
from xaifn.masks import RiseMasks
from xaifn.occlusion import occlusion
from xaifn.rise import rise


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


class _Perturbation(_Attribution):
    """A perturbation explainer: network, activation Cell and images per forward pass."""

    def __init__(self, network, activation_fn, perturbation_per_eval=32):
        super().__init__(network)
        self._activation_fn = _checks.check_cell(activation_fn, "activation_fn")
        self._chunk = _checks.check_positive_int(perturbation_per_eval, "perturbation_per_eval")


class Occlusion(_Perturbation):
    """Occlusion with the original's windows and baseline 0; returns |`xaifn.occlusion`|.

    The functional `xaifn.occlusion` keeps the sign (positive where occluding lowers the target
    probability); this class returns its absolute value, as the original package's maps were
    non-negative.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import Occlusion
        >>> from xaifn.models import LeNet5
        >>> occlusion = Occlusion(LeNet5(10, num_channel=3), activation_fn=ms.nn.Softmax())
        >>> x = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> occlusion(x, ms.Tensor([1], ms.int32)).shape
        (1, 1, 32, 32)
    """

    def __call__(self, inputs, targets):
        return occlusion(self._network, self._activation_fn, inputs, targets, chunk=self._chunk).abs()


class RISE(_Perturbation):
    """RISE over 6000 random masks (`xaifn.rise` with `xaifn.RiseMasks`).

    Args:
        seed: None (default) draws new masks on every call, from fresh OS entropy (no global RNG
            is touched); an int makes every call use the same masks, so a map can be reproduced.
        num_masks: masks per call (default 6000, as the original).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import RISE
        >>> from xaifn.models import LeNet5
        >>> rise = RISE(LeNet5(10, num_channel=3), activation_fn=ms.nn.Softmax(), seed=0, num_masks=60)
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> rise(x, 5).shape, rise(x, ms.Tensor([[5, 1], [1, 2]], ms.int32)).shape
        ((2, 1, 32, 32), (2, 2, 32, 32))
    """

    def __init__(self, network, activation_fn, perturbation_per_eval=32, seed=None, num_masks=6000):
        super().__init__(network, activation_fn, perturbation_per_eval)
        self._seed = None if seed is None else _checks.check_seed(seed)
        self._num_masks = _checks.check_positive_int(num_masks, "num_masks")

    def _masks(self, inputs):
        _checks.check_inputs(inputs)
        seed = np.random.SeedSequence().entropy if self._seed is None else self._seed
        return RiseMasks(seed, self._num_masks, tuple(inputs.shape[2:]))

    def __call__(self, inputs, targets):
        return rise(self._network, self._activation_fn, inputs, targets, self._masks(inputs),
                    chunk=self._chunk)
