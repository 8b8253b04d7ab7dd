"""The metric classes of the original MindSpore XAI package, as thin wrappers over `xaifn.metrics`.

`Faithfulness`, `Localization`, `Robustness` and `ClassSensitivity` keep the original's
constructors, `evaluate` and running results, and take any explainer of `xaifn.explanation` (or
any callable `(inputs, targets) -> maps` with a `network` attribute). Unlike the original they
accept any number of samples N (one result per sample), never switch the network to eval mode,
and follow the corrected arithmetic of `xaifn.metrics` where the original was defective (the
pointing-game disc in (row, col) coordinates; no broken perturbation rejection in Robustness; no
RISE special case in ClassSensitivity).
"""
import math

import numpy as np
import mindspore as ms
from mindspore import nn

from xaifn import _checks, metrics


def _check_explainer(explainer):
    if not callable(explainer) or not isinstance(getattr(explainer, "network", None), nn.Cell):
        raise TypeError("`explainer` must be an xaifn.explanation explainer (callable, with a `network` "
                        f"Cell), got {type(explainer).__name__}.")
    return explainer


def _result_values(result):
    if isinstance(result, float):
        return np.array([result])
    if isinstance(result, (ms.Tensor, np.ndarray)):
        values = result.asnumpy() if isinstance(result, ms.Tensor) else result
        return values.reshape(-1).astype(np.float64)
    raise TypeError(f"`result` must be a float, Tensor or numpy array, got {type(result).__name__}.")


def _finite_mean(values):
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else 0.0


class _LabelAgnostic:
    """Running results of a metric that does not depend on the label."""

    def __init__(self):
        self._results = []

    def aggregate(self, result):
        """Append a result (float, Tensor or array of per-sample results)."""
        self._results.extend(float(v) for v in _result_values(result))

    @property
    def performance(self):
        """Mean of the finite results so far (0.0 when there are none)."""
        return _finite_mean(self._results)

    def get_results(self):
        """A copy of the results so far."""
        return list(self._results)

    def reset(self):
        """Forget the results."""
        self._results = []


class _LabelSensitive:
    """Running results per label, and the checks shared by the label-sensitive metrics."""

    def __init__(self, num_labels):
        self._num_labels = _checks.check_positive_int(num_labels, "num_labels")
        self.reset()

    @property
    def num_labels(self):
        """The number of labels."""
        return self._num_labels

    def aggregate(self, result, targets):
        """Append per-sample results under their labels (an int label applies to all of them)."""
        values = _result_values(result)
        labels = _checks.check_targets(targets, len(values), self._num_labels).asnumpy()[:, 0]
        for label, value in zip(labels, values):
            self._results[int(label)].append(float(value))

    @property
    def class_performances(self):
        """Per-label mean of the finite results (0.0 for a label without any)."""
        return [_finite_mean(self._results[label]) for label in range(self._num_labels)]

    @property
    def performance(self):
        """Mean of all finite results (0.0 when there are none)."""
        return _finite_mean([v for label in range(self._num_labels) for v in self._results[label]])

    def get_results(self):
        """{label: [results]}, a copy."""
        return {label: list(values) for label, values in self._results.items()}

    def reset(self):
        """Forget the results."""
        self._results = {label: [] for label in range(self._num_labels)}

    def _prepare(self, explainer, inputs, targets, saliency):
        """Validate; return (network, 1-D int32 labels, saliency (given or computed))."""
        _check_explainer(explainer)
        _checks.check_inputs(inputs)
        network = explainer.network
        _checks.check_num_classes(network, inputs, self._num_labels, "explainer.network")
        labels = _checks.check_targets(targets, inputs.shape[0], self._num_labels).reshape(-1)
        if saliency is None:
            saliency = explainer(inputs, labels)
        _checks.check_saliency(saliency, inputs.shape[0], inputs.shape[2:])
        return network, labels, saliency


class Faithfulness(_LabelSensitive):
    """Faithfulness: "NaiveFaithfulness", "DeletionAUC" or "InsertionAUC".

    Higher is better for naive faithfulness and insertion. For "DeletionAUC" the original's formula
    (1 - auc / 2 over the drops in probability, kept exactly) gives a LOWER score to a map that
    finds the evidence faster, although the original documents "higher is better" for all three
    (see `xaifn.metrics.faithfulness`).

    Half of the pixels are removed (set to 0 in every channel) in floor(sqrt(H*W)) steps, as the
    original; see `xaifn.metrics.naive_faithfulness`, `deletion_auc`, `insertion_auc` for the
    arithmetic (kept exactly, including the AUC formula that drops both end points; ties in the
    ranking are broken by pixel index, where the original's order was unstable).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from mindspore import nn
        >>> from xaifn.benchmark import Faithfulness
        >>> from xaifn.explanation import Gradient
        >>> from xaifn.models import LeNet5
        >>> faithfulness = Faithfulness(10, nn.Softmax(), "InsertionAUC")
        >>> inputs = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> faithfulness.evaluate(Gradient(LeNet5(10, num_channel=3)), inputs, 5).shape
        (2,)
    """

    _METRICS = {"NaiveFaithfulness": metrics.naive_faithfulness, "DeletionAUC": metrics.deletion_auc,
                "InsertionAUC": metrics.insertion_auc}

    def __init__(self, num_labels, activation_fn, metric="NaiveFaithfulness"):
        super().__init__(num_labels)
        self._activation_fn = _checks.check_cell(activation_fn, "activation_fn")
        self._metric = _checks.check_choice(metric, "metric", tuple(self._METRICS))

    def evaluate(self, explainer, inputs, targets, saliency=None):
        """Faithfulness of `saliency` (default: `explainer(inputs, targets)`), numpy array (N,)."""
        network, labels, saliency = self._prepare(explainer, inputs, targets, saliency)
        function = self._METRICS[self._metric]
        return function(network, self._activation_fn, inputs, labels, saliency).asnumpy().astype(np.float64)


class Localization(_LabelSensitive):
    """Localization: "PointingGame" (disc of radius 15, in (row, col) coordinates: the original's
    disc was transposed) or "IoSR" (threshold 0.5), against a ground-truth `mask` (N, 1, H, W).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.benchmark import Localization
        >>> from xaifn.explanation import Gradient
        >>> from xaifn.models import LeNet5
        >>> masks = np.zeros([1, 1, 32, 32]); masks[:, :, 10:20, 10:20] = 1
        >>> inputs = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> Localization(10, "IoSR").evaluate(Gradient(LeNet5()), inputs, 5, mask=masks).shape
        (1,)
    """

    def __init__(self, num_labels, metric="PointingGame"):
        super().__init__(num_labels)
        self._metric = _checks.check_choice(metric, "metric", ("PointingGame", "IoSR"))

    def evaluate(self, explainer, inputs, targets, saliency=None, mask=None):
        """Localization of `saliency` against `mask`, numpy array (N,); `mask` is required."""
        _checks.check_inputs(inputs)
        _checks.check_region_masks(mask, inputs.shape[0], inputs.shape[2:], name="mask")
        _, _, saliency = self._prepare(explainer, inputs, targets, saliency)
        if self._metric == "PointingGame":
            return metrics.pointing_game(saliency, mask, radius=15).asnumpy().astype(np.float64)
        return metrics.iosr(saliency, mask, threshold=0.5).asnumpy().astype(np.float64)


class Robustness(_LabelSensitive):
    """Robustness: exp(-max-sensitivity) over 10 perturbations U(-0.2, 0.2) (`xaifn.metrics.max_sensitivity`).

    The original's rejection of perturbations that change the prediction never looked at the
    perturbation (it evaluated the unperturbed sample), so it rejected nothing; xaifn leaves it out.
    `activation_fn` is checked and kept for compatibility with the original's constructor.

    Args:
        seed: None (default) draws new noise on every call from fresh OS entropy (no global RNG is
            touched); an int makes every call use the same noise.

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from mindspore import nn
        >>> from xaifn.benchmark import Robustness
        >>> from xaifn.explanation import Gradient
        >>> from xaifn.models import LeNet5
        >>> inputs = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> Robustness(10, nn.Softmax(), seed=0).evaluate(Gradient(LeNet5()), inputs, 0).shape
        (1,)
    """

    def __init__(self, num_labels, activation_fn, seed=None):
        super().__init__(num_labels)
        self._activation_fn = _checks.check_cell(activation_fn, "activation_fn")
        self._seed = None if seed is None else _checks.check_seed(seed)

    @property
    def activation_fn(self):
        """The activation given to the constructor."""
        return self._activation_fn

    def evaluate(self, explainer, inputs, targets, saliency=None):
        """Robustness of the explainer around `inputs`, numpy array (N,) (NaN for a zero map)."""
        _, labels, saliency = self._prepare(explainer, inputs, targets, saliency)
        seed = np.random.SeedSequence().entropy if self._seed is None else self._seed
        return metrics.max_sensitivity(explainer, inputs, labels, seed=seed,
                                       saliency=saliency).asnumpy().astype(np.float64)


class ClassSensitivity(_LabelAgnostic):
    """Class sensitivity: (1 - corr(S_argmax, S_argmin)) / 2 (`xaifn.metrics.class_sensitivity`).

    Works with every explainer alike (the original's RISE branch failed under MindSpore 2.x and
    picked maps by label value instead of position).

    Example:
        >>> import numpy as np, mindspore as ms
        >>> from xaifn.benchmark import ClassSensitivity
        >>> from xaifn.explanation import Gradient
        >>> from xaifn.models import LeNet5
        >>> inputs = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
        >>> ClassSensitivity().evaluate(Gradient(LeNet5()), inputs).shape
        (1,)
    """

    def evaluate(self, explainer, inputs):
        """Class sensitivity of the explainer on `inputs`, numpy array (N,)."""
        _check_explainer(explainer)
        return metrics.class_sensitivity(explainer, explainer.network, inputs).asnumpy().astype(np.float64)
