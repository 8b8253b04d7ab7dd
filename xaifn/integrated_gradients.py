"""Integrated Gradients (Sundararajan et al., 2017) along the straight path from a baseline b:

    IG[n, j] = (x_n - b_n) * sum_s w_s d f(b_n + alpha_s (x_n - b_n))[t_nj] / dx      (N, C, H, W)

with the nodes alpha_s and weights w_s of a quadrature rule on [0, 1] (Captum's names and nodes;
`quadrature`). Signed, per channel, no normalisation. The S path positions of every sample go
through the chunked gradient-sums primitive; all target columns share its forward passes.
Completeness: sum_chw IG[n, j] ~= f(x_n)[t_nj] - f(b_n)[t_nj], up to the rule's error (the
convergence delta).
"""
import numpy as np
import mindspore as ms

from xaifn import _cache, _checks
from xaifn._chunked import (DEFAULT_CHUNK, PERTURBATION_COPIES, bytes_per_image, gradient_sums, images_per_step,
                            path_gradient_sum, target_scores)

#: The quadrature rules, by Captum's names.
METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def quadrature(method, steps):
    """(alphas, weights): the rule's `steps` nodes on [0, 1] and their weights, float64 arrays.

    * ``gausslegendre``: Gauss-Legendre nodes and weights mapped from [-1, 1] to [0, 1] (Captum's
      default; exact for polynomials of degree < 2 * steps).
    * ``riemann_left`` / ``riemann_right`` / ``riemann_middle``: nodes ``s/n``, ``(s+1)/n``,
      ``(s+1/2)/n`` for s = 0..n-1, weights ``1/n`` (as Captum).
    * ``riemann_trapezoid``: nodes ``s/(n-1)`` for s = 0..n-1 (as Captum), weights ``1/(n-1)``
      halved at both ends, so that they sum to 1 (Captum weights ``1/n``, which sum to
      ``(n-1)/n``); needs ``steps >= 2``.

    Every rule's weights sum to 1, so the attributions of a linear model are exact.

    Example:
        >>> import xaifn
        >>> alphas, weights = xaifn.quadrature("riemann_trapezoid", 5)
        >>> alphas.tolist(), weights.tolist()
        ([0.0, 0.25, 0.5, 0.75, 1.0], [0.125, 0.25, 0.25, 0.25, 0.125])
    """
    _checks.check_choice(method, "method", METHODS)
    n = _checks.check_positive_int(steps, "steps")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "riemann_trapezoid":
        if n < 2:
            raise ValueError(f"`steps` must be at least 2 for 'riemann_trapezoid', got {n}.")
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, n), weights
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (np.arange(n) + offset) / n, np.full(n, 1.0 / n)


def integrated_gradients_map(net_fn, inputs, baselines, targets, alphas, weights):
    """(x - b) * sum_s w_s d f(b + alpha_s (x - b))[t] / dx, (N, C, H, W), all positions in one
    batch. Traceable: usable inside a Cell's `construct` in PYNATIVE or GRAPH mode.

    `targets` is an integer Tensor of N labels, `baselines` a Tensor of the inputs' shape, and
    `alphas`, `weights` float Tensors (S,) (from `quadrature`).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> alphas, weights = (ms.Tensor(a, ms.float32) for a in xaifn.quadrature("gausslegendre", 4))
        >>> ig = xaifn.integrated_gradients_map(LeNet5(), x, x * 0, ms.Tensor([1, 2], ms.int32), alphas, weights)
        >>> ig.shape
        (2, 3, 32, 32)
    """
    sums = path_gradient_sum(net_fn, inputs, baselines, targets.reshape(-1, 1), alphas, weights)
    return (inputs - baselines) * sums[:, 0]


def _logits(net_fn):
    def logits(images, aux):  # pylint: disable=unused-argument
        return net_fn(images)
    return logits


@_cache.one_call
def integrated_gradients(net_fn, inputs, targets, baselines=0.0, steps=50, method="gausslegendre",
                         chunk=DEFAULT_CHUNK, return_convergence_delta=False, *, output=None):
    """Integrated Gradients, signed per channel: (N, C, H, W), or (N, l, C, H, W) for (N, l) targets.

    Args:
        net_fn: an `nn.Cell` (evaluated through an eval-mode view sharing its Parameters) or any
            callable from an (N, C, H, W) batch to (N, L) logits.
        inputs: float Tensor (N, C, H, W).
        targets: int, list of N ints, 0-D/1-D integer Tensor, or (N, l) integer Tensor (l targets
            per sample, sharing every forward pass).
        baselines: a number, or a float Tensor/array broadcastable to the inputs: one image
            (C, H, W) or (1, C, H, W) for every sample, or one per sample (N, C, H, W).
        steps: number of path positions (quadrature nodes) per sample.
        method: the quadrature rule, one of `METHODS` (see `quadrature`).
        chunk: the memory of one compiled step: a byte size such as "128MiB" (the default), or an
            int, the number of path images per compiled forward+backward pass (see `xaifn.rise`).
        return_convergence_delta: also return sum_chw IG - (f(x)[t] - f(b)[t]), shaped like the
            targets' rows: (N,) or (N, l).
        output: which output of a network returning several is explained (`xaifn.gradient`).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> ig, delta = xaifn.integrated_gradients(LeNet5(), x, 3, steps=8, return_convergence_delta=True)
        >>> ig.shape, delta.shape
        ((2, 3, 32, 32), (2,))
    """
    net_fn = _checks.check_explained(net_fn, output)
    labels = _checks.check_call(net_fn, inputs, targets, allow_2d=True)
    base = _checks.check_baselines(baselines, inputs)
    alphas, weights = quadrature(method, steps)
    chunk = _checks.check_chunk(chunk)
    _checks.check_bool(return_convergence_delta, "return_convergence_delta")
    # a path image keeps its activations for the backward and one input gradient per target
    step = images_per_step(chunk, bytes_per_image(net_fn, inputs, forwards=2,
                                                  copies=PERTURBATION_COPIES + labels.shape[1]))
    sums = gradient_sums(lambda: _cache.evaluable(net_fn), inputs, base, labels, alphas, weights, step,
                         (net_fn, ("integrated_gradients",)))
    one_column = _targets_are_one_column(targets)
    difference = inputs - base
    if one_column:
        attributions = difference * sums.reshape(inputs.shape)                 # (N, C, H, W)
    else:
        attributions = difference.expand_dims(1) * sums                        # (N, l, C, H, W)
    if not return_convergence_delta:
        return attributions
    build = lambda: _logits(_cache.evaluable(net_fn))  # noqa: E731
    key = (net_fn, ("logits",))
    change = target_scores(build, inputs, labels, key) - target_scores(build, base, labels, key)
    totals = attributions.sum(axis=tuple(range(1 if one_column else 2, attributions.ndim)))
    return attributions, totals - (change.reshape(-1) if one_column else change)


def _targets_are_one_column(targets):
    """True unless `targets` is 2-D (N, l): the forms that give one map per sample."""
    return (targets.ndim if isinstance(targets, ms.Tensor) else np.ndim(targets)) < 2
