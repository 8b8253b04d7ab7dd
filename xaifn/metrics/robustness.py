"""Robustness: how much does an explanation move under small input noise? (max-sensitivity)

    result = exp(-max_k ||S(x + delta_k) - S(x)||_2 / ||S(x)||_2)          higher is better, in (0, 1]

over the whole map of each sample. The noise delta_k is data: an array (K, C, H, W) added to every
sample, or (K, N, C, H, W) per sample, or drawn U(-radius, radius) per element from
`np.random.default_rng(seed)` (K = `num_perturbations`, 10 and 0.2 as the original; no clipping).
A zero map S(x) gives NaN, with a RuntimeWarning.

The original meant to redraw a perturbation that changes the predicted probabilities by more than
0.1, but its check evaluated the unperturbed sample, so it never rejected anything; xaifn leaves
the rejection out (as in Yeh et al., 2019) and every given perturbation counts.
"""
import warnings

import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks
from xaifn.metrics._common import as_tensor


def _noise_source(noise, seed, num_perturbations, radius, shape):
    """A function k -> float32 array (N, C, H, W) of delta_k, and K."""
    if (noise is None) == (seed is None):
        raise ValueError("give exactly one of `noise` (an array (K, C, H, W) or (K, N, C, H, W)) and `seed`.")
    if seed is not None:
        rng = np.random.default_rng(_checks.check_seed(seed))
        count = _checks.check_positive_int(num_perturbations, "num_perturbations")
        radius = _checks.check_nonnegative(radius, "radius")
        return lambda k: rng.uniform(-radius, radius, shape).astype(np.float32), count
    if isinstance(noise, ms.Tensor):
        noise = noise.asnumpy()
    if not isinstance(noise, np.ndarray) or not np.issubdtype(noise.dtype, np.floating):
        raise TypeError(f"`noise` must be a float Tensor or array, got {type(noise).__name__}"
                        f"{'' if not isinstance(noise, np.ndarray) else ' of dtype ' + str(noise.dtype)}.")
    if noise.shape[1:] not in (shape[1:], shape) or noise.shape[0] < 1 or not np.all(np.isfinite(noise)):
        raise ValueError(f"`noise` must be finite, of shape (K, {', '.join(map(str, shape[1:]))}) or "
                         f"(K, {', '.join(map(str, shape))}) with K >= 1, got {noise.shape}.")
    return (lambda k: np.broadcast_to(noise[k], shape).astype(np.float32)), noise.shape[0]


def _farthest(worst, moved, base):
    """max(worst, ||moved - base||_2) per sample, moved (N, ...) and base (N, D)."""
    return ops.maximum(worst, ops.norm(moved.astype(base.dtype).reshape(base.shape) - base, dim=1))


@_cache.serialised
def max_sensitivity(explain_fn, inputs, targets, noise=None, *, seed=None, num_perturbations=10,
                    radius=0.2, saliency=None):
    """exp(-max-sensitivity) per sample (N,), see the module docstring.

    Args:
        explain_fn: (inputs, targets) -> maps (N, ...), e.g. ``functools.partial(xaifn.gradient, net)``
            or an `xaifn.explanation` explainer.
        inputs: float Tensor (N, C, H, W).
        targets: anything `explain_fn` accepts; passed unchanged with every perturbed batch.
        noise: (K, C, H, W) or (K, N, C, H, W) Tensor/array of perturbations; or None with `seed`.
        seed: int: draw `num_perturbations` perturbations U(-radius, radius) from it instead.
        saliency: S(x) if already computed (default: `explain_fn(inputs, targets)`).

    Example:
        >>> import functools, numpy as np, mindspore as ms, xaifn
        >>> from xaifn.metrics import max_sensitivity
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> explain = functools.partial(xaifn.gradient, LeNet5())
        >>> max_sensitivity(explain, x, 1, seed=0, num_perturbations=3).shape
        (2,)
    """
    _checks.check_callable(explain_fn, "explain_fn")
    _checks.check_inputs(inputs)
    delta, count = _noise_source(noise, seed, num_perturbations, radius, tuple(inputs.shape))
    n = inputs.shape[0]
    if saliency is not None:
        base = _checks.check_maps(saliency, n, "saliency")
    else:
        base = _checks.check_maps(explain_fn(inputs, targets), n, "explain_fn(inputs, targets)")
    shape = base.shape
    base = base.reshape(n, -1)
    update = _cache.cached(max_sensitivity, ("farthest",), lambda: _cache.compiled(_farthest, checked=False))
    worst = ops.zeros(n, ms.float32)
    for k in range(count):            # kept on the device: no host round trip per perturbation
        moved = explain_fn(inputs + ms.Tensor(delta(k), inputs.dtype), targets)
        moved = moved if isinstance(moved, ms.Tensor) else ms.Tensor(np.asarray(moved))
        if moved.shape != shape:
            raise ValueError(f"`explain_fn` gave maps of shape {tuple(moved.shape)} for perturbed inputs, against "
                             f"{tuple(shape)} for the {'saliency' if saliency is not None else 'inputs'}.")
        worst = update(worst, moved, base)
    worst, norm = worst.asnumpy().astype(np.float64), ops.norm(base, dim=1).asnumpy().astype(np.float64)
    if not np.all(np.isfinite(worst)):
        raise ValueError(f"`explain_fn` gave non-finite maps (NaN or inf) for perturbed inputs of sample(s) "
                         f"{np.flatnonzero(~np.isfinite(worst)).tolist()}.")
    if (norm == 0).any():
        warnings.warn(f"the saliency map of sample(s) {np.flatnonzero(norm == 0).tolist()} is zero: "
                      "max-sensitivity is NaN there.", RuntimeWarning, stacklevel=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return as_tensor(np.exp(-worst / np.where(norm == 0, np.nan, norm)))
