"""Chunked, compiled evaluation: the `chunk` knob and the primitive behind every perturbation method.

For inputs x (N, C, H, W), masks M_i (K, 1, H, W) and targets t (N, l) it computes

    S[n, j] = sum_i  score(x~_ni)[t_nj] * M_i,      x~_ni = x_n * K_i + baseline * (1 - K_i),

where K_i = M_i when the masks mark the pixels kept (RISE) and K_i = 1 - M_i when they mark the
pixels occluded (Occlusion). The work runs in steps of P perturbed images: a block of b samples
times k masks, the last block padded (zero masks add nothing to S, padded samples are dropped) so
that one compiled kernel serves every step. Masks are read `masks[i:j]` one chunk at a time, so a
lazy mask set (`RiseMasks`, `OcclusionWindows`) is never held whole, and the perturbed images of
one step are all that exists at once.

The chunk knob, shared by every chunked primitive (call these, do not re-derive them):

* `images_per_step(chunk, bytes_per_image)` -> P, for a `chunk` validated by
  `_checks.check_chunk`: an int is P itself; a `ByteBudget` (the user's "256MiB") gives
  P = max(1, budget // bytes_per_image).
* `bytes_per_image(net_fn, inputs, forwards=1, copies=PERTURBATION_COPIES)` -> the honest estimate
  of the memory one perturbed image costs in a step: `forwards` times the bytes of the network's
  intermediate outputs on one sample (measured by the eager check forward of `_checks.profile`,
  cached per network and sample shape; `UNKNOWN_NETWORK_FACTOR` image sizes for a plain function,
  whose layers cannot be seen) plus `copies` image-sized buffers of the step itself. A primitive
  with a backward pass passes forwards=2 (activations kept for the backward) or more.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks

#: The functional API's default chunk: a memory budget for one step (measured: benchmarks/).
DEFAULT_CHUNK = "128MiB"
#: Image-sized buffers a perturbation step costs per image besides the network's intermediate
#: outputs: measured, 8.2-8.3 at 224 x 224 and 512 x 512 (peak above the idle process per image,
#: benchmarks/bench_memory.py): the broadcast operands and the perturbed batch inside the kernel,
#: the mask batch on host and device, and the CPU memory pool's slack.
PERTURBATION_COPIES = 8
#: Intermediate bytes assumed per image byte for a plain-function network (layers not visible).
UNKNOWN_NETWORK_FACTOR = 32


def bytes_per_image(net_fn, inputs, forwards=1, copies=PERTURBATION_COPIES):
    """Estimated bytes one perturbed image of `inputs`'s shape costs in a step (module docstring)."""
    image = int(np.prod(inputs.shape[1:])) * inputs.itemsize
    activations = _checks.profile(net_fn, inputs).activation_bytes
    if activations is None:
        activations = UNKNOWN_NETWORK_FACTOR * image
    return forwards * activations + copies * image


def images_per_step(chunk, bytes_per_image):  # pylint: disable=redefined-outer-name
    """P: perturbed images per compiled step for a validated `chunk` (an int or a ByteBudget)."""
    if isinstance(chunk, _checks.ByteBudget):
        return max(1, chunk.bytes // max(1, int(bytes_per_image)))
    return int(chunk)


def _perturbed(x, masks, baseline, keep):
    """The b * k perturbed images x_n * K_i + baseline * (1 - K_i), sample-major (traceable)."""
    kept = masks if keep else 1 - masks
    images = (x - baseline).expand_dims(1) * kept.expand_dims(0) + baseline
    return images.reshape((x.shape[0] * masks.shape[0],) + x.shape[1:])


def _aux_kernel(aux_fn, keep):
    def aux_rows(x, masks, baseline, aux):
        return aux_fn(_perturbed(x, masks, baseline, keep), ops.repeat_interleave(aux, masks.shape[0], 0))
    return _cache.compiled(aux_rows, checked=False)  # the sums are checked once, at the end


def _step_kernel(score_fn, keep, aux_fn=None):
    """One step: (acc + this step's sums, the aux rows the score read, the picked scores (b, k, l)).
    Without `aux_fn`, `aux` holds one row per perturbed image; with it (fused), one per sample,
    turned into rows in-graph."""
    def step(acc, x, labels, masks, baseline, aux):
        b, k = x.shape[0], masks.shape[0]
        images = _perturbed(x, masks, baseline, keep)
        if aux_fn is not None:
            aux = aux_fn(images, ops.repeat_interleave(aux, k, 0))
        scores = score_fn(images, aux)
        index = ops.broadcast_to(labels.expand_dims(1), (b, k, labels.shape[1]))
        picked = ops.gather_elements(scores.reshape(b, k, -1), 2, index).astype(acc.dtype)  # (b, k, l)
        flat_masks = masks.reshape(k, -1).astype(acc.dtype)
        return acc + ops.matmul(picked.transpose(0, 2, 1), flat_masks), aux, picked   # (b, l, H*W)
    return _cache.compiled(step, checked=False)  # the sums are checked once, at the end


def _fused_check(fused_step, args, apart, dtype):
    """(True, the fused step's outputs on `args`) if its aux rows and picked scores equal those of
    `apart`, the outputs run apart, up to rounding; else (False, `apart`) -- also when it cannot be
    compiled (an aux function on a *different* Cell with the score's Parameter names)."""
    try:
        fused = fused_step(*args)
    except RuntimeError as error:
        if "already exists" not in str(error):
            raise
        return False, apart
    tol = 1e-2 if dtype in (ms.float16, ms.bfloat16) else 1e-4
    for one, other in zip(fused[1:], apart[1:]):
        one, other = one.astype(ms.float32).asnumpy(), other.astype(ms.float32).asnumpy()
        if not np.allclose(one, other, rtol=tol, atol=tol * (1 + np.abs(other).max(initial=0))):
            return False, apart
    return True, fused


def perturbation_sums(build_score, inputs, labels, masks, chunk, cache_key, *, keep=True,
                      baseline=0.0, aux=None, build_aux=None):
    """S (N, l, H, W) as in the module docstring, summed in float32 (float64 for float64 inputs).

    Args:
        build_score: builds, on a cache miss only, the traced score function
            (images (B, C, H, W), aux (B, A)) -> scores (B, L).
        inputs: validated (N, C, H, W) Tensor.
        labels: validated (N, l) int32 Tensor.
        masks: anything with `.shape == (K, 1, H, W)` whose slices `masks[i:j]` are float arrays.
        chunk: most perturbed images per compiled call (see `images_per_step`).
        cache_key: (owner, key) under which the compiled kernel is cached (see `_cache.cached`).
        keep: True if masks mark kept pixels, False if they mark occluded pixels.
        baseline: value given to the pixels that are not kept.
        aux: optional (N, A) per-sample Tensor handed to `score_fn` alongside each image.
        build_aux: None, or builds (on a cache miss only) a traced function (images (B, C, H, W),
            aux (B, A)) -> (B, A') whose rows, one per perturbed image, replace `aux`'s as the
            score function's second argument. See "Fused or apart" below.

    Fused or apart. With `build_aux`, the step traces the aux function into the score's graph:
    one compiled call per step, and when both evaluate views of one network MindSpore computes
    their shared layers once. But on networks that add in place (ResNet's ``out += identity``
    after a BatchNorm), MindSpore (2.10) computes wrong values for the second of two
    Parameter-sharing views traced into one graph, silently (either of the two, measured). So the
    first step after each (re)build of the kernels, and for each new step signature (shapes,
    dtype), runs both ways: fused, and apart -- the aux
    function compiled alone, then the score's step on its rows. The fused step serves every later
    step if its aux rows and picked scores equal those run apart; else every step runs apart, at
    the cost of a second forward.
    """
    owner, key = cache_key
    key = tuple(key)
    if build_aux is None:
        step = _cache.cached(owner, ("perturbation_sums", keep) + key, lambda: _step_kernel(build_score(), keep))
    else:
        step = _cache.cached(owner, ("perturbation_sums", keep, "fused") + key,
                             lambda: _step_kernel(build_score(), keep, build_aux()))
        rows = _cache.cached(owner, ("perturbation_aux", keep) + key, lambda: _aux_kernel(build_aux(), keep))
    n, num_targets = labels.shape
    num_masks, height, width = masks.shape[0], masks.shape[2], masks.shape[3]
    block = min(n, chunk)
    per_step = min(max(1, chunk // block), num_masks)  # no padding beyond the masks there are
    dtype = inputs.dtype
    if build_aux is not None:  # the fused graph is compiled per signature: checked per signature
        signature = (block, per_step) + tuple(inputs.shape[1:]) + (str(dtype),)
        verdict = _cache.cached(owner, ("perturbation_fused_agrees", keep) + key + signature, lambda: [None])
    aux = ms.Tensor(np.zeros((n, 1)), dtype) if aux is None else aux
    base = ms.Tensor(baseline, dtype)
    sums = ms.float64 if dtype == ms.float64 else ms.float32  # float16 scores summed in float32
    results = []
    for start in range(0, n, block):
        x, lab, a = (_pad_rows(t[start:start + block], block) for t in (inputs, labels, aux))
        acc = ops.zeros((block, num_targets, height * width), sums)
        repeated = ops.repeat_interleave(a, per_step, 0) if build_aux is None else None  # aux per image
        for m0 in range(0, num_masks, per_step):
            chunk_masks = np.asarray(masks[m0:m0 + per_step], dtype=np.float32)
            chunk_masks = ms.Tensor(_pad_rows(chunk_masks, per_step), dtype)
            if build_aux is None:
                acc = step(acc, x, lab, chunk_masks, base, repeated)[0]
            elif verdict[0]:
                acc = step(acc, x, lab, chunk_masks, base, a)[0]
            else:
                apart = _cache.cached(owner, ("perturbation_sums", keep) + key,
                                      lambda: _step_kernel(build_score(), keep))
                outputs = apart(acc, x, lab, chunk_masks, base, rows(x, chunk_masks, base, a))
                if verdict[0] is None:   # if fused, every step fused: same maps at every call
                    verdict[0], outputs = _fused_check(step, (acc, x, lab, chunk_masks, base, a), outputs, dtype)
                acc = outputs[0]
        results.append(acc[:min(block, n - start)])
    out = results[0] if len(results) == 1 else ops.cat(results, 0)
    _cache.check_finite_result(out, _cache.method_name(key))
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
        picked = ops.gather_elements(score_fn(x, aux), 1, labels)
        return picked.astype(ms.float64 if x.dtype == ms.float64 else ms.float32)  # as the sums
    return _cache.compiled(scores)


def target_scores(build_score, inputs, labels, cache_key, aux=None):
    """score(x, aux)[n, t_nj]: the unperturbed scores (N, l), compiled and cached."""
    owner, key = cache_key
    kernel = _cache.cached(owner, ("target_scores",) + tuple(key), lambda: _target_kernel(build_score()))
    aux = ms.Tensor(np.zeros((inputs.shape[0], 1)), inputs.dtype) if aux is None else aux
    return kernel(inputs, labels, aux)


# --------------------------------------------------------------------------------------------
# Per-sample perturbation sets by rank (the metrics: deletion, insertion, naive faithfulness, ROAD)
# --------------------------------------------------------------------------------------------

def _removal_kernel(score_fn):
    def step(repeated, labels, kept, fill, aux):
        b = labels.shape[0]
        images = (repeated - fill) * kept + fill                                  # (b * k, C, H, W)
        scores = score_fn(images, aux)
        k = scores.shape[0] // b
        index = ops.broadcast_to(labels.expand_dims(1), (b, k, 1))
        return ops.gather_elements(scores.reshape(b, k, -1), 2, index).squeeze(2)  # (b, k)
    return _cache.compiled(step, checked=False)  # the scores are checked once, at the end


def _balanced(count, most):
    """The smallest part size that splits `count` into as few parts of at most `most` as possible
    (33 steps, at most 32 per call: 2 calls of 17, not 32 + 1 padded to 32)."""
    parts = -(-count // most)
    return -(-count // parts)


def removal_scores(build_score, inputs, labels, ranks, intervals, chunk, cache_key, *, reference=0.0,
                   fill=None):
    """score(x~_nj)[t_n] (N, S): sample n with the pixels of rank in [low_j, high_j) removed.

        x~_nj = x_n * K_nj + fill_nj * (1 - K_nj),     K_nj = 1 - 1[low_j <= rank_n < high_j]  (all channels)

    Work runs in calls of a block of b samples times k intervals (b * k <= chunk, both balanced so
    that padding stays below one row per call), the last block padded (padded rows are dropped, a
    padded interval removes nothing) so that one compiled kernel serves every call. The keep masks
    K (1 / C of the images' size) are built from the ranks on the host one call at a time, so
    memory does not grow with the number of steps S; each sample block is repeated k times once
    (on the host: MindSpore's CPU repeat_interleave was measured 10x slower), and the kernel blends
    and scores (measured faster on CPU than building the masks in the kernel with 5-D broadcasts).

    Args:
        build_score: builds, on a cache miss only, the traced score function
            (images (B, C, H, W), aux (B, 1)) -> scores (B, L) (aux unused here).
        inputs: validated (N, C, H, W) Tensor.
        labels: validated (N, 1) int32 Tensor: one target per sample.
        ranks: (N, H, W) integer array, the rank of each pixel (0 = removed first).
        intervals: (S, 2) integer array of [low, high) rank intervals, one per step.
        chunk: most perturbed images per compiled call (see `images_per_step`).
        cache_key: (owner, key) under which the compiled kernel is cached (see `_cache.cached`).
        reference: the value of a removed pixel when `fill` is None.
        fill: None, or a function (n0, n1, s0, s1) -> float array (n1 - n0, s1 - s0, C, H, W) of the
            values removed pixels take in samples n0..n1-1 at steps s0..s1-1 (read per call).
    """
    owner, key = cache_key
    step = _cache.cached(owner, ("removal_scores",) + tuple(key), lambda: _removal_kernel(build_score()))
    n, num_steps = inputs.shape[0], len(intervals)
    block = _balanced(n, chunk)                               # samples per call
    per_step = _balanced(num_steps, max(1, chunk // block))   # intervals per call
    dtype, image = inputs.dtype, tuple(inputs.shape[1:])
    ranks = np.asarray(ranks)[:, None]                                            # (N, 1, H, W)
    intervals = _pad_rows(np.asarray(intervals).reshape(-1, 2), -(-num_steps // per_step) * per_step)
    aux = ms.Tensor(np.zeros((block * per_step, 1)), dtype)
    constant = ms.Tensor(reference, dtype)
    images = inputs.asnumpy()
    results = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        repeated = ms.Tensor(np.repeat(_pad_rows(images[start:stop], block), per_step, axis=0), dtype)
        lab, rank = _pad_rows(labels[start:stop], block), _pad_rows(ranks[start:stop], block)
        row = []
        for s0 in range(0, num_steps, per_step):
            low, high = (intervals[s0:s0 + per_step, i].reshape(1, -1, 1, 1, 1) for i in (0, 1))
            kept = ((rank[:, None] < low) | (rank[:, None] >= high)).astype(np.float32)
            kept = ms.Tensor(kept.reshape((block * per_step, 1) + image[1:]), dtype)
            if fill is None:
                values = constant
            else:
                values = np.asarray(fill(start, stop, s0, min(s0 + per_step, num_steps)), np.float32)
                values = _pad_rows(_pad_rows(values, block).swapaxes(0, 1), per_step).swapaxes(0, 1)
                values = ms.Tensor(values.reshape((block * per_step,) + image), dtype)
            row.append(step(repeated, lab, kept, values, aux))
        results.append(ops.cat(row, 1)[:stop - start, :num_steps])
    out = results[0] if len(results) == 1 else ops.cat(results, 0)
    return _cache.check_finite_result(out, _cache.method_name(key))


# --------------------------------------------------------------------------------------------
# Sums over copies of each input: the gradient counterpart of `perturbation_sums`.
#
# For samples x_n (with per-sample companions such as baselines or targets) and K copies described
# by per-copy rows c_s (a path position, a noise sample) with weights w_s,
#
#     S[n] = sum_s  step(x_n, c_s, w_s),
#
# evaluated in steps of at most P copies (P from `images_per_step`): a block of b samples times k copies, the last block
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
        chunk: P, the most copies (b * k) per step (see `images_per_step`).
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
            # wait for the step (reading its result): a step launched while the previous one still
            # runs competes with it for the cores (CPU: two back-to-back steps 1.4x slower than in turn)
            sums[0].asnumpy()
            total = sums if total is None else tuple(t + s for t, s in zip(total, sums))
        results.append(total if whole else tuple(t[:min(block, n - start)] for t in total))
    return tuple(r[0] if len(results) == 1 else ops.cat(r, 0) for r in zip(*results))


def _gradient_step(net_fn):
    def step(x, baselines, labels, alphas, weights):
        return (path_gradient_sum(net_fn, x, baselines, labels, alphas, weights),)
    return _cache.compiled(step, checked=False)  # the sums are checked once, at the end


def gradient_sums(build_net, inputs, baselines, labels, alphas, weights, chunk, cache_key):
    """sum_s w_s d f(b_n + alpha_s (x_n - b_n))[t_nj] / dx: (N, l, C, H, W), through `copy_sums`
    with one compiled step (cached under `cache_key`, built by `build_net()` on a miss), `chunk`
    (P) path images per step; all l targets share each forward pass."""
    owner, key = cache_key
    step = _cache.cached(owner, ("gradient_sums",) + tuple(key), lambda: _gradient_step(build_net()))
    (sums,) = copy_sums(step, (inputs, baselines, labels), (alphas, weights), chunk, inputs.dtype)
    return _cache.check_finite_result(sums, _cache.method_name(key))
