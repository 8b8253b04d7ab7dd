"""RISEPlus (Qiu et al., WWW 2022): RISE with each masked image weighted by its inlier score.

With o(x) = max_c inlier(x)[c], s_min = o(zero image), s_max_n = o(x_n):

    s_ni = (clip(o(x_n * M_i), s_min, s_max_n) - s_min) / (s_max_n - s_min + eps),  eps = 2.22e-16
    S[n, j] = (1/K) * sum_i  s_ni * sigma(f(x_n * M_i))[t_nj] * M_i

`inlier_fn` is any images -> (N, L) in-distribution score, e.g.
`xaifn.ood.inlier_fn(params, features_fn)`. The weights s_ni of a chunk of perturbed images come
from a compiled kernel of their own, run before the classifier's step on the same images
(`perturbation_sums`' `build_aux`): the inlier function and the classifier are never traced into
one graph, where MindSpore merges the layers that two views of one network share and computes
wrong inlier scores, silently, on networks that add in place (ResNet's ``out += identity``).
"""
from mindspore import ops

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, bytes_per_image, images_per_step, perturbation_sums

EPS = 2.22e-16


def inlier_weight(inlier_scores, s_min, s_max):
    """The clipped, rescaled inlier score of each image (B,), given per-image s_min and s_max."""
    best = inlier_scores.max(axis=1)
    clipped = ops.minimum(ops.maximum(best, s_min), s_max)
    return (clipped - s_min) / (s_max - s_min + EPS)


def weight_fn(inlier_fn):
    """(images, bounds = [s_min, s_max] per image) -> s_i (B, 1), the weight of each image."""
    def weight(images, bounds):
        return inlier_weight(inlier_fn(images), bounds[:, 0], bounds[:, 1]).expand_dims(1)
    return weight


def weighted_probability_fn(net_fn, activation_fn):
    """(images, weights s_i (B, 1)) -> s_i * sigma(f(images)), the RISEPlus score."""
    def weighted(images, weights):
        return activation_fn(net_fn(images)) * weights
    return weighted


def _max_score_kernel(inlier_fn):
    def max_score(images):
        return inlier_fn(images).max(axis=1)
    return _cache.compiled(max_score)


@_cache.serialised
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
