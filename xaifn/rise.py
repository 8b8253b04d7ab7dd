"""RISE (Petsiuk et al., 2018): for masks M_i (K, 1, H, W) in [0, 1], shared by all samples,

    S[n, j] = (1/K) * sum_i  sigma(f(x_n * M_i))[t_nj] * M_i          (masked pixels become 0)

evaluated through the one chunked primitive; all l target columns share the forward passes.
"""
from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, perturbation_sums


def probability_fn(net_fn, activation_fn):
    """(images, aux) -> sigma(f(images)): the score of the perturbation methods (aux unused)."""
    def probabilities(images, aux):  # pylint: disable=unused-argument
        return activation_fn(net_fn(images))
    return probabilities


def rise(net_fn, activation_fn, inputs, targets, masks, chunk=DEFAULT_CHUNK, *, output=None):
    """RISE saliency (N, l, H, W) for targets (N, l) (l = 1 for int, 0-D or 1-D targets).

    Args:
        net_fn: an `nn.Cell` (evaluated through an eval-mode view) or a callable to (N, L) logits.
        activation_fn: logits -> probabilities, e.g. `nn.Softmax()` or `ops.sigmoid`.
        inputs: float Tensor (N, C, H, W).
        targets: int, list of N ints, 0-D/1-D/(N, l) integer Tensor.
        masks: (K, 1, H, W) Tensor or array in [0, 1], or a lazy `RiseMasks` (streamed).
        chunk: most perturbed images per compiled forward pass (default 256).
        output: which output of a network returning several is explained (`xaifn.gradient`).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from mindspore import nn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> masks = xaifn.rise_masks(seed=0, num_masks=64, size=(32, 32))
        >>> xaifn.rise(LeNet5(), nn.Softmax(), x, ms.Tensor([[1, 2], [3, 4]]), masks).shape
        (2, 2, 32, 32)
    """
    net_fn = _cache.selected(_checks.check_callable(net_fn, "net_fn"), _checks.check_output(output))
    labels, chunk = _checks.check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk)
    masks = _checks.check_masks(masks, *inputs.shape[2:])
    sums = perturbation_sums(lambda: probability_fn(_cache.evaluable(net_fn), activation_fn), inputs, labels,
                             masks, chunk, (net_fn, ("rise", activation_fn)))
    return sums / masks.shape[0]
