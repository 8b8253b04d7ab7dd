"""RISE (Petsiuk et al., 2018): for masks M_i (K, 1, H, W) in [0, 1], shared by all samples,

    S[n, j] = (1/K) * sum_i  sigma(f(x_n * M_i))[t_nj] * M_i          (masked pixels become 0)

evaluated through the one chunked primitive; all l target columns share the forward passes.
"""
from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, bytes_per_image, images_per_step, perturbation_sums


def probability_fn(net_fn, activation_fn):
    """(images, aux) -> sigma(f(images)): the score of the perturbation methods (aux unused)."""
    def probabilities(images, aux):  # pylint: disable=unused-argument
        return activation_fn(net_fn(images))
    return probabilities


@_cache.one_call
def rise(net_fn, activation_fn, inputs, targets, masks, chunk=DEFAULT_CHUNK, *, output=None):
    """RISE saliency (N, l, H, W) for targets (N, l) (l = 1 for int, 0-D or 1-D targets).

    Args:
        net_fn: an `nn.Cell` (evaluated through an eval-mode view) or a callable to (N, L) logits.
        activation_fn: logits -> probabilities, e.g. `nn.Softmax()` or `ops.sigmoid`.
        inputs: finite float Tensor (N, C, H, W); cast to the dtype of the network's Parameters
            when it differs (e.g. float64 inputs to a float32 network). The map is float32
            (float64 for a float64 network): float16 scores are summed in float32.
        targets: int, list of N ints, 0-D/1-D/(N, l) integer Tensor.
        masks: (K, 1, H, W) Tensor or array in [0, 1], or a lazy `RiseMasks` (streamed).
        chunk: the memory of one compiled step: a byte size such as "128MiB" (the default), or
            an int, the number of perturbed images per step. A byte budget is turned into images
            from the sizes of the network's intermediate outputs on one sample (measured once per
            network and image shape), so peak memory stays near it whatever the image size.
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
    net_fn = _checks.check_explained(net_fn, output)
    inputs, labels, chunk = _checks.check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk)
    masks = _checks.check_masks(masks, *inputs.shape[2:])
    step = images_per_step(chunk, bytes_per_image(net_fn, inputs))
    sums = perturbation_sums(lambda: probability_fn(_cache.evaluable(net_fn), activation_fn), inputs, labels,
                             masks, step, (net_fn, ("rise", _cache.callable_key(activation_fn))))
    return sums / masks.shape[0]
