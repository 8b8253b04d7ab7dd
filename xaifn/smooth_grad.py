"""SmoothGrad (Smilkov et al., 2017) and its NoiseTunnel variants (Captum's semantics), over any
attribution method given as a function a(x, t) and S noise samples e_s shared by all inputs:

    smoothgrad     = (1/S) sum_s a(x + e_s, t)
    smoothgrad_sq  = (1/S) sum_s a(x + e_s, t)**2
    vargrad        = smoothgrad_sq - smoothgrad**2      (the variance of a over the noise)

The noise is data: an array (S, C, H, W), or `GaussianNoise` drawn from an explicit seed with a
stated standard deviation. The S noisy copies of every input go through the chunked copy-sums
primitive, `chunk` noisy images per call of the method.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks
from xaifn._chunked import (DEFAULT_CHUNK, PERTURBATION_COPIES, UNKNOWN_NETWORK_FACTOR, copy_sums,
                            images_per_step)
from xaifn.masks import _MaskSet

#: The NoiseTunnel kinds, by Captum's names.
KINDS = ("smoothgrad", "smoothgrad_sq", "vargrad")


class GaussianNoise(_MaskSet):
    """S samples of zero-mean Gaussian noise with standard deviation `std`, shape (S, C, H, W),
    rendered on demand: sample s comes from ``np.random.default_rng([seed, s])``, so any slice of
    the set is the same whichever way it is cut, and no global RNG is touched.

    `std` is in the units of the inputs (Captum's ``stdevs``); the SmoothGrad paper states it as a
    fraction of the inputs' range (max - min), e.g. 0.15 * (x.max() - x.min()).

    Example:
        >>> import numpy as np
        >>> from xaifn import GaussianNoise
        >>> noise = GaussianNoise(seed=0, num_samples=50, shape=(3, 32, 32), std=0.2)
        >>> noise.shape, bool(np.array_equal(noise[10:12], np.asarray(noise)[10:12]))
        ((50, 3, 32, 32), True)
    """

    def __init__(self, seed, num_samples, shape, std):
        self._seed = _checks.check_seed(seed)
        num_samples = _checks.check_positive_int(num_samples, "num_samples")
        if not isinstance(shape, (tuple, list)) or len(shape) != 3:
            raise TypeError(f"`shape` must be a triple (C, H, W) of positive ints, got {shape!r}.")
        shape = tuple(_checks.check_positive_int(v, "shape") for v in shape)
        self._std = _checks.check_real(std, "std")
        if self._std < 0:
            raise ValueError(f"`std` must be non-negative, got {std}.")
        super().__init__(num_samples, shape[1:])
        self.shape = (num_samples,) + shape

    def _render(self, start, stop):
        noise = np.zeros((stop - start,) + self.shape[1:], np.float32)
        for i, sample in enumerate(range(start, stop)):
            noise[i] = np.random.default_rng([self._seed, sample]).standard_normal(self.shape[1:]) * self._std
        return noise


def _noisy_copies(x, noise):
    """x_n + e_s for a block: (b * k, C, H, W), copies of one sample contiguous. Traceable."""
    b, k = x.shape[0], noise.shape[0]
    return (x.expand_dims(1) + noise.expand_dims(0)).reshape((b * k,) + tuple(x.shape[1:]))


def _moments(maps, weights):
    """(sum_s w_s a_s, sum_s w_s a_s**2) per sample of maps (b * k, ...). Traceable."""
    k = weights.shape[0]
    b = maps.shape[0] // k
    flat, w = maps.reshape(b, k, -1), weights.reshape(1, 1, k)
    shape = (b,) + tuple(maps.shape[1:])
    return ops.matmul(w, flat).reshape(shape), ops.matmul(w, flat * flat).reshape(shape)


def _result(kind):
    """(mean, mean_sq) -> (the `kind`'s map, whether both moments are finite). Traceable."""
    def result(mean, mean_sq):
        finite = _cache.finite_mask(mean).all() & _cache.finite_mask(mean_sq).all()
        if kind == "smoothgrad":
            return mean, finite
        if kind == "smoothgrad_sq":
            return mean_sq, finite
        return mean_sq - mean * mean, finite
    return result


# shared by every call (no network inside): compiled once per block shape
_NOISY_COPIES = _cache.compiled(_noisy_copies, checked=False)
_MOMENTS = _cache.compiled(_moments, checked=False)  # the result is checked once, at the end
#: kind -> (mean, mean_sq) -> (the result, whether the moments are finite), checked in the graph
_RESULTS = {kind: _cache.compiled(_result(kind), checked=False) for kind in KINDS}


def _noisy_step(method):
    """Per-block sums over the copies x + e_s of (w_s a, w_s a**2), one call of `method`."""
    def step(x, labels, noise, weights):
        b, k = x.shape[0], noise.shape[0]
        maps = method(_NOISY_COPIES(x, noise), ms.Tensor(np.repeat(labels, k, axis=0)))
        if not isinstance(maps, ms.Tensor) or maps.shape[0] != b * k:
            raise TypeError(f"`method` must return a Tensor with one row per input, got "
                            f"{getattr(maps, 'shape', type(maps).__name__)} for {b * k} inputs.")
        return _MOMENTS(maps, weights.astype(maps.dtype))
    return step


@_cache.serialised
def smooth_grad(method, inputs, targets, noise, kind="smoothgrad", chunk=DEFAULT_CHUNK):
    """SmoothGrad of `method` over `noise`: what `method` returns, averaged (see the module docstring).

    Args:
        method: any attribution as a function ``method(inputs, targets) -> Tensor (N, ...)``,
            e.g. ``lambda x, t: xaifn.gradient(net, x, t)`` or `xaifn.integrated_gradients` with
            its network bound.
        inputs: float Tensor (N, C, H, W).
        targets: an int, or anything with one entry per input that `method` accepts (list, 1-D or
            (N, l) integer Tensor); repeated for the noisy copies of each input.
        noise: float Tensor/array (S, C, H, W) added to every input, or a `GaussianNoise`.
        kind: ``"smoothgrad"``, ``"smoothgrad_sq"`` or ``"vargrad"``.
        chunk: the most noisy images per call of `method`: an int, or a byte size such as
            "128MiB" (the default), turned into images as for a network whose layers cannot be
            seen (`method` is only a function): 2 * UNKNOWN_NETWORK_FACTOR + PERTURBATION_COPIES
            image sizes per noisy image (a forward and a backward).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> net = LeNet5()
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> noise = xaifn.GaussianNoise(seed=0, num_samples=8, shape=(3, 32, 32), std=0.15)
        >>> xaifn.smooth_grad(lambda x, t: xaifn.input_x_gradient(net, x, t), x, [1, 2], noise).shape
        (2, 3, 32, 32)
    """
    _checks.check_callable(method, "method")
    _checks.check_inputs(inputs)
    labels = _checks.check_sample_targets(targets, inputs.shape[0])
    noise = _checks.check_noise(noise, tuple(inputs.shape[1:]))
    _checks.check_choice(kind, "kind", KINDS)
    image = int(np.prod(inputs.shape[1:])) * inputs.itemsize
    chunk = images_per_step(_checks.check_chunk(chunk), (2 * UNKNOWN_NETWORK_FACTOR + PERTURBATION_COPIES) * image)
    count = noise.shape[0]
    mean, mean_sq = copy_sums(_noisy_step(method), (inputs, labels), (noise, np.full(count, 1 / count)), chunk,
                              inputs.dtype)
    result, finite = _RESULTS[kind](mean, mean_sq)
    if not bool(finite):
        _cache.check_finite_result((mean, mean_sq), "smooth_grad")   # raises, naming the method
    return result
