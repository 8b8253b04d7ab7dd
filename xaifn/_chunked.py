"""The one chunked, compiled evaluation primitive behind every perturbation method.

For inputs x (N, C, H, W), masks M_i (K, 1, H, W) and targets t (N, l) it computes

    S[n, j] = sum_i  score(x~_ni)[t_nj] * M_i,      x~_ni = x_n * K_i + baseline * (1 - K_i),

where K_i = M_i when the masks mark the pixels kept (RISE) and K_i = 1 - M_i when they mark the
pixels occluded (Occlusion). The work runs in steps of at most `chunk` perturbed images: a block
of b samples times k masks, the last block padded (zero masks add nothing to S, padded samples are
dropped) so that one compiled kernel serves every step. Masks are read `masks[i:j]` one chunk at a
time, so a lazy mask set (`RiseMasks`, `OcclusionWindows`) is never held whole, and the perturbed
images of one step are all that exists at once.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache

#: Perturbed images per compiled forward in the functional API (measured: benchmarks/).
DEFAULT_CHUNK = 256


def _step_kernel(score_fn, keep):
    def step(acc, x, labels, masks, baseline, aux):
        b, k = x.shape[0], masks.shape[0]
        kept = masks if keep else 1 - masks
        images = x.expand_dims(1) * kept.expand_dims(0) + baseline * (1 - kept.expand_dims(0))
        scores = score_fn(images.reshape((b * k,) + x.shape[1:]), ops.repeat_interleave(aux, k, 0))
        index = ops.broadcast_to(labels.expand_dims(1), (b, k, labels.shape[1]))
        picked = ops.gather_elements(scores.reshape(b, k, -1), 2, index)  # (b, k, l)
        flat_masks = masks.reshape(k, -1)
        return acc + ops.matmul(picked.transpose(0, 2, 1), flat_masks)   # (b, l, H*W)
    return _cache.compiled(step)


def perturbation_sums(build_score, inputs, labels, masks, chunk, cache_key, *, keep=True,
                      baseline=0.0, aux=None):
    """S (N, l, H, W) as in the module docstring.

    Args:
        build_score: builds, on a cache miss only, the traced score function
            (images (B, C, H, W), aux (B, A)) -> scores (B, L).
        inputs: validated (N, C, H, W) Tensor.
        labels: validated (N, l) int32 Tensor.
        masks: anything with `.shape == (K, 1, H, W)` whose slices `masks[i:j]` are float arrays.
        chunk: most perturbed images per compiled call.
        cache_key: (owner, key) under which the compiled kernel is cached (see `_cache.cached`).
        keep: True if masks mark kept pixels, False if they mark occluded pixels.
        baseline: value given to the pixels that are not kept.
        aux: optional (N, A) per-sample Tensor handed to `score_fn` alongside each image.
    """
    owner, key = cache_key
    step = _cache.cached(owner, ("perturbation_sums", keep) + tuple(key),
                         lambda: _step_kernel(build_score(), keep))
    n, num_targets = labels.shape
    num_masks, height, width = masks.shape[0], masks.shape[2], masks.shape[3]
    block = min(n, chunk)
    per_step = min(max(1, chunk // block), num_masks)  # no padding beyond the masks there are
    dtype = inputs.dtype
    aux = ms.Tensor(np.zeros((n, 1)), dtype) if aux is None else aux
    base = ms.Tensor(baseline, dtype)
    results = []
    for start in range(0, n, block):
        x, lab, a = (_pad_rows(t[start:start + block], block) for t in (inputs, labels, aux))
        acc = ops.zeros((block, num_targets, height * width), dtype)
        for m0 in range(0, num_masks, per_step):
            chunk_masks = np.asarray(masks[m0:m0 + per_step], dtype=np.float32)
            chunk_masks = _pad_rows(chunk_masks, per_step)
            acc = step(acc, x, lab, ms.Tensor(chunk_masks, dtype), base, a)
        results.append(acc[:min(block, n - start)])
    out = results[0] if len(results) == 1 else ops.cat(results, 0)
    return out.reshape(n, num_targets, height, width)


def _pad_rows(rows, size):
    """`rows` padded with zero rows to `size` along axis 0 (numpy array or Tensor)."""
    missing = size - rows.shape[0]
    if missing == 0:
        return rows
    if isinstance(rows, np.ndarray):
        return np.concatenate([rows, np.zeros((missing,) + rows.shape[1:], rows.dtype)])
    return ops.cat([rows, ops.zeros((missing,) + tuple(rows.shape[1:]), rows.dtype)])


def _target_kernel(score_fn):
    def scores(x, labels, aux):
        return ops.gather_elements(score_fn(x, aux), 1, labels)
    return _cache.compiled(scores)


def target_scores(build_score, inputs, labels, cache_key, aux=None):
    """score(x, aux)[n, t_nj]: the unperturbed scores (N, l), compiled and cached."""
    owner, key = cache_key
    kernel = _cache.cached(owner, ("target_scores",) + tuple(key), lambda: _target_kernel(build_score()))
    aux = ms.Tensor(np.zeros((inputs.shape[0], 1)), inputs.dtype) if aux is None else aux
    return kernel(inputs, labels, aux)


# --------------------------------------------------------------------------------------------
# Sums over copies of each input: the gradient counterpart of `perturbation_sums`.
#
# For samples x_n (with per-sample companions such as baselines or targets) and K copies described
# by per-copy rows c_s (a path position, a noise sample) with weights w_s,
#
#     S[n] = sum_s  step(x_n, c_s, w_s),
#
# evaluated in steps of at most `chunk` copies: a block of b samples times k copies, the last block
# of copies padded with zero rows (weight 0: they add nothing) and padded samples dropped, so that a
# compiled step serves every call. Copies are read `rows[i:j]` one block at a time, so a lazy set
# (`GaussianNoise`) is never held whole. Integrated Gradients' path positions and SmoothGrad's noise
# samples both go through `copy_sums`; `gradient_sums` is its compiled gradient step.
# --------------------------------------------------------------------------------------------

def _target_sum(net_fn, images, labels):
    return ops.gather_elements(net_fn(images), 1, labels).sum()


def target_gradients(net_fn, images, labels):
    """d f(images)[b, t_bj] / d images for each of the l columns of `labels` (B, l), sharing one
    forward pass: (B, l, C, H, W). Traceable."""
    if labels.shape[1] == 1:   # one target: the plain gradient of the picked logits
        return ms.grad(_target_sum, grad_position=1)(net_fn, images, labels).expand_dims(1)
    logits, pullback = ms.vjp(net_fn, images)
    on, off = ops.ones((), logits.dtype), ops.zeros((), logits.dtype)
    return ops.stack([pullback(ops.one_hot(labels[:, j], logits.shape[1], on, off))[0]
                      for j in range(labels.shape[1])], 1)


def path_gradient_sum(net_fn, inputs, baselines, labels, alphas, weights):
    """sum_s w_s * target_gradients(b + alpha_s (x - b)): (N, l, C, H, W), all of the S positions
    of each sample in one batch of N * S images. Traceable."""
    b, k = inputs.shape[0], alphas.shape[0]
    along = alphas.reshape((1, k) + (1,) * (inputs.ndim - 1))
    images = baselines.expand_dims(1) + along * (inputs - baselines).expand_dims(1)
    grads = target_gradients(net_fn, images.reshape((b * k,) + inputs.shape[1:]),
                             ops.repeat_interleave(labels, k, 0))
    weighted = ops.matmul(weights.reshape(1, 1, k), grads.reshape(b, k, -1))   # (b, 1, l*C*H*W)
    return weighted.reshape((b, labels.shape[1]) + tuple(inputs.shape[1:]))


def copy_sums(step, samples, copies, chunk, dtype):
    """Sums over copies of each sample, in fixed-size steps (see the section comment above).

    Args:
        step: (sample blocks..., copy blocks...) -> tuple of per-sample sums over the k copies of
            the block, each with leading axis b; padded copies carry weight 0.
        samples: tuple of Tensors (or numpy arrays) with leading axis N (inputs, baselines, labels).
        copies: tuple of per-copy rows with leading axis K (arrays or lazy sets sliced `[i:j]`).
        chunk: most copies (b * k) per step.
        dtype: dtype of the copy rows handed to `step`.

    Returns the tuple of sums, each with leading axis N.
    """
    n, count = samples[0].shape[0], copies[0].shape[0]
    block = min(n, chunk)
    per_step = min(max(1, chunk // block), count)
    results = []
    for start in range(0, n, block):
        whole = block == n   # one block: no slicing (eager slices cost ~ms each)
        part = samples if whole else tuple(_pad_rows(s[start:start + block], block) for s in samples)
        total = None
        for c0 in range(0, count, per_step):
            rows = tuple(ms.Tensor(_pad_rows(np.asarray(c[c0:c0 + per_step], np.float32), per_step), dtype)
                         for c in copies)
            sums = step(*part, *rows)
            total = sums if total is None else tuple(t + s for t, s in zip(total, sums))
        results.append(total if whole else tuple(t[:min(block, n - start)] for t in total))
    return tuple(r[0] if len(results) == 1 else ops.cat(r, 0) for r in zip(*results))


def _gradient_step(net_fn):
    def step(x, baselines, labels, alphas, weights):
        return (path_gradient_sum(net_fn, x, baselines, labels, alphas, weights),)
    return _cache.compiled(step)


def gradient_sums(build_net, inputs, baselines, labels, alphas, weights, chunk, cache_key):
    """sum_s w_s d f(b_n + alpha_s (x_n - b_n))[t_nj] / dx: (N, l, C, H, W), through `copy_sums`
    with one compiled step (cached under `cache_key`, built by `build_net()` on a miss); all l
    targets share each forward pass."""
    owner, key = cache_key
    step = _cache.cached(owner, ("gradient_sums",) + tuple(key), lambda: _gradient_step(build_net()))
    (sums,) = copy_sums(step, (inputs, baselines, labels), (alphas, weights), chunk, inputs.dtype)
    return sums
