"""RISEPlus (Qiu et al., WWW 2022): RISE with each masked image weighted by its inlier score.

With o(x) = max_c inlier(x)[c], s_min = o(zero image), s_max_n = o(x_n):

    s_ni = (clip(o(x_n * M_i), s_min, s_max_n) - s_min) / (s_max_n - s_min + eps),  eps = 2.22e-16
    S[n, j] = (1/K) * sum_i  s_ni * sigma(f(x_n * M_i))[t_nj] * M_i

`inlier_fn` is any images -> (N, L) in-distribution score, e.g.
`xaifn.ood.inlier_fn(params, features_fn)`. The weights s_ni are the `aux` rows of
`perturbation_sums`: traced into the classifier's chunked kernel (one compiled call per chunk, the
layers the classifier and a view of it share computed once) when that kernel's inlier scores agree
with the inlier function compiled alone on the first chunk, else computed by that kernel of their
own before each chunk (MindSpore gets the fused graph wrong on ResNet's in-place residual add).
"""
from mindspore import ops

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, bytes_per_image, images_per_step, perturbation_sums

EPS = 2.22e-16


def inlier_weight(best, s_min, s_max):
    """The clipped, rescaled inlier score o of each image (B,), given per-image s_min and s_max."""
    clipped = ops.minimum(ops.maximum(best, s_min), s_max)
    return (clipped - s_min) / (s_max - s_min + EPS)


def weight_fn(inlier_fn):
    """(images, bounds = [s_min, s_max] per image) -> [s_i, o(image)] (B, 2): the weight of each
    image, and its unclipped score (so that the fused kernel's check also sees clipped scores)."""
    def weight(images, bounds):
        best = inlier_fn(images).max(axis=1)
        return ops.stack([inlier_weight(best, bounds[:, 0], bounds[:, 1]), best], axis=1)
    return weight


def weighted_probability_fn(net_fn, activation_fn):
    """(images, rows [s_i, o] (B, 2)) -> s_i * sigma(f(images)), the RISEPlus score."""
    def weighted(images, rows):
        return activation_fn(net_fn(images)) * rows[:, :1]
    return weighted


def _max_score_kernel(inlier_fn):
    def max_score(images):
        return inlier_fn(images).max(axis=1)
    return _cache.compiled(max_score)


@_cache.one_call
def rise_plus(net_fn, activation_fn, inlier_fn, inputs, targets, masks, chunk=DEFAULT_CHUNK, *,
              output=None):
    """RISEPlus saliency (N, l, H, W); arguments as `xaifn.rise` (`output` too), plus `inlier_fn`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from mindspore import nn
        >>> from xaifn import ood
        >>> from xaifn.models import LeNet5
        >>> net = LeNet5()
        >>> features = xaifn.network_view(net, output_features=True)  # penultimate layer
        >>> inlier = ood.inlier_fn(ood.init(0, 84, 10), features)
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> masks = xaifn.rise_masks(seed=0, num_masks=32, size=(32, 32))
        >>> xaifn.rise_plus(net, nn.Softmax(), inlier, x, 5, masks).shape
        (2, 1, 32, 32)
    """
    _checks.check_callable(inlier_fn, "inlier_fn")
    net_fn = _checks.check_explained(net_fn, output)
    inputs, labels, chunk = _checks.check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk)
    masks = _checks.check_masks(masks, *inputs.shape[2:])
    # keyed on the network, like the main kernel: rebuilt when a checkpoint is loaded into it
    inlier_key, activation_key = _cache.callable_key(inlier_fn), _cache.callable_key(activation_fn)
    max_score = _cache.cached(net_fn, ("max_score", "rise_plus", inlier_key), lambda: _max_score_kernel(inlier_fn))
    s_max = max_score(inputs)
    s_min = max_score(ops.zeros((1,) + tuple(inputs.shape[1:]), inputs.dtype))
    bounds = ops.stack([ops.broadcast_to(s_min, s_max.shape), s_max], axis=1)
    build = lambda: weighted_probability_fn(_cache.evaluable(net_fn), activation_fn)  # noqa: E731
    step = images_per_step(chunk, bytes_per_image(net_fn, inputs, forwards=2))  # + the inlier forward
    sums = perturbation_sums(build, inputs, labels, masks, step,
                             (net_fn, ("rise_plus", activation_key, inlier_key)), aux=bounds,
                             build_aux=lambda: weight_fn(inlier_fn))
    return sums / masks.shape[0]
