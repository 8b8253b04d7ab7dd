"""The class API of the original MindSpore XAI package, as thin wrappers over xaifn's functions.

Each class validates its constructor arguments, keeps them, and delegates every call to the
functional core. Unlike the original, the user's network is never switched to eval mode: the
explanation is computed on an eval-mode view that shares the network's Parameters, so the
network's own flags are left as they were.
"""
import numbers
import warnings

import numpy as np
import mindspore as ms
from mindspore import nn, ops
from mindspore.train import LearningRateScheduler
from mindspore.train.callback import RunContext, _CallbackManager, _InternalCallbackParam

from xaifn import _cache, _checks, _rules, _views, ood
from xaifn._views import network_view
from xaifn.gradcam import gradcam
from xaifn.gradients import deconvolution, gradient, guided_backprop
from xaifn.masks import RiseMasks
from xaifn.occlusion import occlusion
from xaifn.rise import rise
from xaifn.rise_plus import rise_plus


class _Attribution:
    """An explainer bound to a network: `explainer(inputs, targets)` -> (N, 1, H, W) Tensor.

    Every class takes the keyword-only `output`: which output of a network returning several is
    explained (an index, a key or a function choosing it; see `xaifn.gradient`).
    """

    _method = None

    def __init__(self, network, *, output=None):
        self._network = _checks.check_cell(network, "network")
        self._output = _checks.check_output(output)

    @property
    def network(self):
        """The network being explained."""
        return self._network

    def __call__(self, inputs, targets):
        return type(self)._method(self._network, inputs, targets, output=self._output)


class Gradient(_Attribution):
    """Gradient saliency (`xaifn.gradient`): max over channels of abs(d f(x)[t] / dx).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import Gradient
        >>> from xaifn.models import LeNet5
        >>> saliency = Gradient(LeNet5(10, num_channel=3))(ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32), 5)
        >>> saliency.shape
        (1, 1, 32, 32)
    """

    _method = staticmethod(gradient)


class _RuleAttribution(_Attribution):
    """A gradient-family explainer with a backward rule at the activations chosen by `activations`
    ("all", "relu" or a tuple of Cell types; see `xaifn.deconvolution`)."""

    def __init__(self, network, *, activations="all", output=None):
        super().__init__(network, output=output)
        self._activations = _rules.check_activations(activations)

    def __call__(self, inputs, targets):
        return type(self)._method(self._network, inputs, targets, activations=self._activations,
                                  output=self._output)


class Deconvolution(_RuleAttribution):
    """Deconvolution (`xaifn.deconvolution`): positive gradients only through each activation cell.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import Deconvolution
        >>> from xaifn.models import LeNet5
        >>> saliency = Deconvolution(LeNet5())(ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32), 5)
        >>> saliency.shape
        (1, 1, 32, 32)
    """

    _method = staticmethod(deconvolution)


class GuidedBackprop(_RuleAttribution):
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
    """GradCAM (`xaifn.gradcam`) at the cell named `layer` ('' = the input); `reshape` as there.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import GradCAM
        >>> from xaifn.models import LeNet5
        >>> gradcam = GradCAM(LeNet5(), layer="conv2")
        >>> gradcam(ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32), 5).shape
        (1, 1, 32, 32)
    """

    def __init__(self, network, layer="", *, reshape=None, output=None):
        super().__init__(network, output=output)
        _checks.check_layer_name(network, layer)
        if reshape is not None:
            _checks.check_callable(reshape, "reshape")
        self._layer = layer
        self._reshape = reshape

    def __call__(self, inputs, targets):
        return gradcam(self._network, inputs, targets, self._layer, reshape=self._reshape, output=self._output)


class _Perturbation(_Attribution):
    """A perturbation explainer: network, activation Cell and images per forward pass."""

    def __init__(self, network, activation_fn, perturbation_per_eval=32, *, output=None):
        super().__init__(network, output=output)
        self._activation_fn = _checks.check_cell(activation_fn, "activation_fn")
        self._chunk = _checks.check_positive_int(perturbation_per_eval, "perturbation_per_eval")


class Occlusion(_Perturbation):
    """Occlusion with the original's windows and baseline 0; returns abs(`xaifn.occlusion`).

    The functional `xaifn.occlusion` keeps the sign (positive where occluding lowers the target
    probability); this class returns its absolute value, as the original package's maps were
    non-negative.

    Keyword-only `window` and `stride` (int or (h, w); default: the original's, see
    `xaifn.occlusion`) and `chunk` (perturbed images per forward pass; default
    `perturbation_per_eval`) make large inputs tractable: at 224 x 224 the default is 1024
    windows of 7 x 7, while ``window=32, stride=16`` needs 169.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import Occlusion
        >>> from xaifn.models import LeNet5
        >>> occlusion = Occlusion(LeNet5(10, num_channel=3), activation_fn=ms.nn.Softmax())
        >>> x = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> occlusion(x, ms.Tensor([1], ms.int32)).shape
        (1, 1, 32, 32)
    """

    def __init__(self, network, activation_fn, perturbation_per_eval=32, *, window=None, stride=None, chunk=None,
                 output=None):
        super().__init__(network, activation_fn, perturbation_per_eval, output=output)
        self._window = None if window is None else _checks.check_size(window, "window")
        self._stride = None if stride is None else _checks.check_size(stride, "stride")
        if chunk is not None:
            self._chunk = _checks.check_positive_int(chunk, "chunk")

    def __call__(self, inputs, targets):
        return occlusion(self._network, self._activation_fn, inputs, targets, window=self._window,
                         stride=self._stride, chunk=self._chunk, output=self._output).abs()


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

    def __init__(self, network, activation_fn, perturbation_per_eval=32, seed=None, num_masks=6000, *,
                 output=None):
        super().__init__(network, activation_fn, perturbation_per_eval, output=output)
        self._seed = None if seed is None else _checks.check_seed(seed)
        self._num_masks = _checks.check_positive_int(num_masks, "num_masks")

    def _masks(self, inputs):
        """The masks of one call: fixed by `seed`, or fresh ones drawn from OS entropy."""
        _checks.check_inputs(inputs)
        seed = np.random.SeedSequence().entropy if self._seed is None else self._seed
        return RiseMasks(seed, self._num_masks, tuple(inputs.shape[2:]))

    def __call__(self, inputs, targets):
        return rise(self._network, self._activation_fn, inputs, targets, self._masks(inputs),
                    chunk=self._chunk, output=self._output)


class _StepDecay:
    """lr(step) = base * factor ** (epoch // every), for `LearningRateScheduler` (needs steps/epoch)."""

    def __init__(self, base, factor, every):
        self.base, self.factor, self.every = base, factor, every
        self.steps_per_epoch = 1

    def __call__(self, lr, cur_step_num):  # called after step cur_step_num (1-based)
        epoch = cur_step_num // self.steps_per_epoch
        return ood.learning_rate(epoch, self.base, self.factor, self.every)


class OoDNet(nn.Cell):
    """Out-of-distribution network: the DeConf-C head (`xaifn.ood`) on a classifier's features.

    `underlying` must have `num_features` (int) and `output_features` (bool) attributes: with
    `output_features` True it returns its (N, num_features) penultimate features. A network
    without them (a mindcv model) is used through `head=`, the name of its classifier cell (a
    Dense): the features are the input of that cell (`xaifn.features_view`). The underlying
    network is not modified: features come from a view of it that shares its Parameters, with
    `output_features` set on the view only. The head's parameters are this Cell's Parameters
    (`head`, `dense_w`, `dense_b`, `bn_gamma`, `bn_beta`, `bn_mean`, `bn_var`) and its forward
    calls `xaifn.ood.logits` (training) or `xaifn.ood.scores` (evaluation).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from mindspore import nn
        >>> import mindspore.dataset as ds
        >>> from xaifn.explanation import OoDNet
        >>> from xaifn.models import LeNet5
        >>> rng = np.random.default_rng(0)
        >>> data = ds.NumpySlicesDataset((rng.random((8, 3, 32, 32), np.float32),
        ...                               np.eye(10, dtype=np.float32)[np.arange(8)]), shuffle=False).batch(4)
        >>> ood_net = OoDNet(LeNet5(10, num_channel=3), 10)
        >>> ood_net.train(data, nn.SoftmaxCrossEntropyWithLogits(), epoch=1)
        >>> ood_net(ms.Tensor(rng.random((1, 3, 32, 32)), ms.float32)).shape
        (1, 10)
    """

    def __init__(self, underlying, num_classes, *, head=None):
        super().__init__()
        _checks.check_cell(underlying, "underlying")
        if head is None:
            num_features = self._check_contract(underlying)
            features = network_view(underlying, output_features=True)
        else:
            name, cell = _views.find_head(underlying, head)
            if isinstance(getattr(cell, "in_channels", None), bool) or \
                    not isinstance(getattr(cell, "in_channels", None), numbers.Integral):
                raise ValueError(f"`head` {name!r} ({type(cell).__name__}) has no int `in_channels`, so the "
                                 "number of features is unknown; name a Dense classifier cell.")
            num_features = int(cell.in_channels)
            features = _views.features_view(underlying, name)
        self._num_classes = _checks.check_positive_int(num_classes, "num_classes")
        # plain attributes, not child cells: the user's Parameters keep their names and flags
        object.__setattr__(self, "_underlying", underlying)
        object.__setattr__(self, "_features", features)
        self._train_underlying = False
        for name, value in ood.init(0, num_features, self._num_classes).items():
            setattr(self, name, ms.Parameter(value, name=name, requires_grad=name in ood.TRAINABLE))

    @property
    def num_classes(self):
        """The number of classes."""
        return self._num_classes

    @property
    def underlying(self):
        """The underlying classifier (the user's Cell)."""
        return self._underlying

    @staticmethod
    def _check_contract(underlying):
        """num_features of an underlying network with the spec's attributes."""
        for attr, kind in (("num_features", numbers.Integral), ("output_features", bool)):
            if not hasattr(underlying, attr):
                raise AttributeError(f"`underlying` ({type(underlying).__name__}) must have the "
                                     f"attribute {attr!r} ({kind.__name__}), or pass `head=` the name of its "
                                     "classifier cell (e.g. head='classifier' for mindcv models).")
        if isinstance(underlying.num_features, bool) or not isinstance(underlying.num_features, numbers.Integral):
            raise TypeError(f"`underlying.num_features` must be an int, got {underlying.num_features!r}.")
        if not isinstance(underlying.output_features, bool):
            raise TypeError(f"`underlying.output_features` must be a bool, got {underlying.output_features!r}.")
        return _checks.check_positive_int(underlying.num_features, "underlying.num_features")

    def params(self):
        """The head's parameters as the dict `xaifn.ood` works on."""
        return {name: getattr(self, name) for name in ood.TRAINABLE + ood.STATISTICS}

    def construct(self, x):
        """Training logits s / tau (after set_train(True)) or OoD scores s, (N, num_classes)."""
        features = self._features(x)
        if not self._train_underlying:
            features = ops.stop_gradient(features)
        params = {"head": self.head, "dense_w": self.dense_w, "dense_b": self.dense_b,
                  "bn_gamma": self.bn_gamma, "bn_beta": self.bn_beta,
                  "bn_mean": self.bn_mean, "bn_var": self.bn_var}
        if self.training:
            values, mean, var = ood.logits(params, features)
            ops.assign(self.bn_mean, mean)
            ops.assign(self.bn_var, var)
            return values
        return ood.scores(params, features)

    def set_train(self, mode=True):
        """Set training mode; the underlying view trains only with `train_underlying=True`."""
        super().set_train(mode)
        self._features.set_train(bool(mode) and self._train_underlying)
        return self

    def get_train_parameters(self, train_underlying=False):
        """The Parameters to train: the head's, plus the underlying network's if asked."""
        params = [getattr(self, name) for name in ood.TRAINABLE]
        return params + (self._underlying.trainable_params() if train_underlying else [])

    def prepare_train(self, learning_rate=0.1, momentum=0.9, weight_decay=0.0001, lr_base_factor=0.1,
                      lr_epoch_denom=30, train_underlying=False):
        """(Momentum optimizer, LearningRateScheduler) with the original's defaults."""
        for value, name in ((learning_rate, "learning_rate"), (momentum, "momentum"),
                            (weight_decay, "weight_decay"), (lr_base_factor, "lr_base_factor")):
            _checks.check_real(value, name)
        _checks.check_positive_int(lr_epoch_denom, "lr_epoch_denom")
        if not isinstance(train_underlying, bool):
            raise TypeError(f"`train_underlying` must be a bool, got {type(train_underlying).__name__}.")
        self._train_underlying = train_underlying
        optimizer = nn.Momentum(self.get_train_parameters(train_underlying), learning_rate=float(learning_rate),
                                momentum=float(momentum), weight_decay=float(weight_decay))
        scheduler = LearningRateScheduler(_StepDecay(float(learning_rate), float(lr_base_factor), lr_epoch_denom))
        return optimizer, scheduler

    def train(self, dataset, loss_fn, callbacks=None, epoch=90, optimizer=None, scheduler=None, **kwargs):
        """Train on a `mindspore.dataset` of (image, one-hot label) batches with `loss_fn`."""
        if not hasattr(dataset, "create_tuple_iterator"):
            raise TypeError(f"`dataset` must be a mindspore.dataset.Dataset, got {type(dataset).__name__}.")
        _checks.check_callable(loss_fn, "loss_fn")
        epoch = _checks.check_positive_int(epoch, "epoch")
        if optimizer is None or scheduler is None:
            default_optimizer, default_scheduler = self.prepare_train(**kwargs)
            optimizer = optimizer if optimizer is not None else default_optimizer
            scheduler = scheduler if scheduler is not None else default_scheduler
        steps = dataset.get_dataset_size()
        if not steps:
            raise ValueError("`dataset` yielded no batch: there is nothing to train the OoDNet on.")
        if isinstance(getattr(scheduler, "learning_rate_function", None), _StepDecay):
            scheduler.learning_rate_function.steps_per_epoch = steps
        callbacks = [scheduler] + (list(callbacks) if isinstance(callbacks, (list, tuple))
                                   else [] if callbacks is None else [callbacks])
        self.set_train(True)
        try:
            self._fit(dataset, loss_fn, optimizer, callbacks, epoch, steps)
        finally:
            self.set_train(False)

    def _check_batch(self, row, index):
        """(images, labels) of one dataset row, or a ValueError naming the batch."""
        if len(row) != 2:
            raise ValueError(f"`dataset` batch {index} must have 2 columns (images, one-hot labels), "
                             f"got {len(row)}.")
        labels = row[1]
        if labels.ndim != 2 or labels.shape[1] != self._num_classes:
            raise ValueError(f"`dataset` batch {index}: labels must be one-hot (N, {self._num_classes}) "
                             f"(num_classes columns), got shape {tuple(labels.shape)}"
                             + (" (class indices? one-hot encode them, e.g. with "
                                "mindspore.dataset.transforms.OneHot)." if labels.ndim == 1 else "."))
        return row[0], labels

    def _fit(self, dataset, loss_fn, optimizer, callbacks, epochs, steps):
        def loss_of(images, labels):
            return loss_fn(self(images), labels).mean()
        step = _cache.training_step(loss_of, optimizer)
        cb_params = _InternalCallbackParam(train_network=self, epoch_num=epochs, batch_num=steps,
                                           optimizer=optimizer, loss_fn=loss_fn, cur_step_num=0,
                                           train_dataset=dataset, mode="train")
        context = RunContext(cb_params)
        with _CallbackManager(callbacks) as manager:
            manager.on_train_begin(context)
            for cb_params.cur_epoch_num in range(1, epochs + 1):
                manager.on_train_epoch_begin(context)
                for row in dataset.create_tuple_iterator(num_epochs=1):
                    images, labels = self._check_batch(row, cb_params.cur_step_num)
                    cb_params.cur_step_num += 1
                    manager.on_train_step_begin(context)
                    cb_params.net_outputs = step(images, labels.astype(ms.float32))
                    manager.on_train_step_end(context)
                manager.on_train_epoch_end(context)
                if context.get_stop_requested():
                    break
            manager.on_train_end(context)


class RISEPlus(RISE):
    """RISEPlus: RISE weighted by the inlier score of a trained `OoDNet` (`xaifn.rise_plus`).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.explanation import OoDNet, RISEPlus
        >>> from xaifn.models import LeNet5
        >>> net = LeNet5(10, num_channel=3)
        >>> riseplus = RISEPlus(OoDNet(net, 10), net, activation_fn=ms.nn.Softmax(), seed=0, num_masks=60)
        >>> riseplus(ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32), 5).shape
        (2, 1, 32, 32)
    """

    def __init__(self, ood_net, network, activation_fn, perturbation_per_eval=32, seed=None, num_masks=6000, *,
                 output=None):
        if not isinstance(ood_net, OoDNet):
            raise TypeError(f"`ood_net` must be an xaifn.explanation.OoDNet, got {type(ood_net).__name__}.")
        super().__init__(network, activation_fn, perturbation_per_eval, seed, num_masks, output=output)
        self._ood_net = ood_net
        self._inlier = (None, None)
        self._warned_untrained = False

    def _inlier_fn(self):
        """ood_net's inlier score; renewed when the storage of its head's or its underlying
        network's Parameters moved (a checkpoint was loaded)."""
        cells = (self._ood_net, self._ood_net.underlying)
        version = tuple(p.data_ptr() for cell in cells for p in cell.get_parameters())
        if self._inlier[0] != version:
            features = self._ood_net._features  # pylint: disable=protected-access
            self._inlier = (version, ood.inlier_fn(self._ood_net.params(), features))
        return self._inlier[1]

    def _warn_if_untrained(self):
        """RISEPlus with the head as `OoDNet` made it weights by an untrained score: say so, once."""
        if self._warned_untrained:
            return
        head = self._ood_net.head.asnumpy()
        if np.array_equal(head, ood.init(0, head.shape[1], head.shape[0])["head"].asnumpy()):
            self._warned_untrained = True
            warnings.warn("RISEPlus: the OoDNet's head is untrained (as initialised), so its inlier "
                          "scores are meaningless; train it first (OoDNet.train or xaifn.ood.fit).",
                          UserWarning, stacklevel=3)

    def __call__(self, inputs, targets):
        self._warn_if_untrained()
        return rise_plus(self._network, self._activation_fn, self._inlier_fn(), inputs, targets,
                         self._masks(inputs), chunk=self._chunk, output=self._output)
