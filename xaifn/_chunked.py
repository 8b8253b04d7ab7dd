"""Chunked, compiled evaluation: the `chunk` knob and the one loop behind every perturbation method.

For inputs x (N, C, H, W), masks M_i (K, 1, H, W) and targets t (N, l) it computes

    S[n, j] = sum_i  score(x~_ni)[t_nj] * M_i,      x~_ni = x_n * K_i + baseline * (1 - K_i),

where K_i = M_i when the masks mark the pixels kept (RISE) and K_i = 1 - M_i when they mark the
pixels occluded (Occlusion). The metrics (`removal_scores`) score per-sample perturbations
instead, one per rank interval, and Integrated Gradients, SmoothGrad and ScoreCAM sum a step over
copies of each sample (`copy_sums`); the formulas are at each entry point.

One loop serves them all: `blocked` runs a step function over N samples times K copies (masks,
windows, rank intervals, path positions, noise samples, channels) in calls of at most P perturbed
images: a block of b samples times k copies, b * k <= P, both balanced (the fewest calls, then the
smallest blocks: 33 copies at most 32 per call are 2 calls of 17, not 32 + 1 padded), the last
blocks padded with zero rows (a zero mask, interval or weight adds nothing; padded samples are
dropped) so that one compiled kernel serves every call. Copies are read `copies[i:j]` one call at a
time, so a lazy set (`RiseMasks`, `OcclusionWindows`, `GaussianNoise`) is never held whole, and the
perturbed images of one call are all that exists at once. The results are summed over the copies
(the step carries the running sums: S above) or concatenated along them (the metrics' curves), and
combined on the host: no eager MindSpore op runs between the compiled calls (each costs
milliseconds of dispatch on CPU).

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
import collections

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


#: Where one call of `blocked` is: the slices of its real (not padded) samples and copies.
Block = collections.namedtuple("Block", "samples copies")


def _balanced(count, most):
    """The smallest part size that splits `count` into as few parts of at most `most` as possible
    (33 steps, at most 32 per call: 2 calls of 17, not 32 + 1 padded to 32)."""
    parts = -(-count // most)
    return -(-count // parts)


def block_sizes(num_samples, num_copies, chunk):
    """(b, k): the samples and copies per call of `blocked` (module docstring), b * k <= chunk."""
    block = _balanced(num_samples, chunk)
    return block, _balanced(num_copies, max(1, chunk // block))


def _pad_rows(rows, size):
    """The array `rows` padded with zero rows to `size` along axis 0."""
    missing = size - rows.shape[0]
    if missing == 0:
        return rows
    return np.concatenate([rows, np.zeros((missing,) + rows.shape[1:], rows.dtype)])


def _host(value):
    return value.asnumpy() if isinstance(value, ms.Tensor) else value


def _sample_rows(host, given, start, stop, size):
    """host[start:stop] padded with zero rows to `size`: a Tensor if the samples `given` are one."""
    rows = _pad_rows(host[start:stop], size)
    return ms.Tensor(rows) if isinstance(given, ms.Tensor) else rows


def blocked(step, samples, copies, chunk, fold=False):
    """The loop of every chunked primitive (module docstring): N samples times K copies in calls of
    a block of b samples times k copies, b * k <= `chunk`, both balanced, the last ones padded.

    Args:
        step: called once per block as ``step(where, sample_rows, copy_rows)`` (with `fold`:
            ``step(where, sample_rows, copy_rows, total)``): `where` is the call's `Block`,
            `sample_rows` the b-row block of each of `samples` (as given: Tensor or array), zero
            rows padding the last block, `copy_rows` the k rows ``np.asarray(c[i:j])`` of each of
            `copies`, zero rows padding the last ones. It returns the call's values (b, k, ...); with
            `fold`, the running sums over the copies: `total` (None at the first call of a sample
            block) plus this call's, a tuple (b, ...) each. Tensors or arrays: Tensors are read
            at the end of their sample block, so the compiled calls queue without waiting.
        samples: tuple of Tensors or arrays with leading axis N (all of them in one block, as
            they are; else cut on the host: eager slices cost milliseconds each).
        copies: tuple of per-copy rows with leading axis K (arrays or lazy sets sliced `[i:j]`).
        chunk: P, the most perturbed images (b * k) per call.
        fold: sum over the copies (the step accumulates) instead of concatenating along them.

    Returns the (N, K, ...) array of the values, or with `fold` the tuple of sums (N, ...) as
    arrays; the padding dropped.
    """
    n, count = samples[0].shape[0], copies[0].shape[0]
    block, per_call = block_sizes(n, count, chunk)
    hosts = samples if block == n else tuple(_host(s) for s in samples)
    results = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        part = samples if block == n else tuple(_sample_rows(h, s, start, stop, block)
                                                for h, s in zip(hosts, samples))
        total, values = None, []
        for c0 in range(0, count, per_call):
            c1 = min(c0 + per_call, count)
            rows = tuple(_pad_rows(np.asarray(c[c0:c1]), per_call) for c in copies)
            where = Block(slice(start, stop), slice(c0, c1))
            if fold:
                total = step(where, part, rows, total)
            else:
                values.append(step(where, part, rows))
        if fold:
            results.append(tuple(_host(t)[:stop - start] for t in total))
        else:
            results.append(np.concatenate([_host(v) for v in values], 1)[:stop - start, :count])
    if fold:
        return tuple(np.concatenate(r) for r in zip(*results))
    return np.concatenate(results)


def _result(values, key):
    """The host array `values` as a Tensor, checked finite (`_cache.check_finite_result`)."""
    return _cache.check_finite_result(ms.Tensor(values), _cache.method_name(key))


# --------------------------------------------------------------------------------------------
# Shared masks, weighted sums (RISE, Occlusion, RISEPlus): S in the module docstring
# --------------------------------------------------------------------------------------------

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
    """S (N, l, H, W) as in the module docstring, summed in float32 (float64 for float64 inputs),
    through `blocked`: the masks are its copies, the kernel adds each call's sums to the last.

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

    def apart():
        return _cache.cached(owner, ("perturbation_sums", keep) + key, lambda: _step_kernel(build_score(), keep))
    if build_aux is None:
        step = apart()
    else:
        step = _cache.cached(owner, ("perturbation_sums", keep, "fused") + key,
                             lambda: _step_kernel(build_score(), keep, build_aux()))
        rows = _cache.cached(owner, ("perturbation_aux", keep) + key, lambda: _aux_kernel(build_aux(), keep))
    n, num_targets = labels.shape
    num_masks, height, width = masks.shape[0], masks.shape[2], masks.shape[3]
    dtype = inputs.dtype
    if build_aux is not None:  # the fused graph is compiled per signature: checked per signature
        signature = block_sizes(n, num_masks, chunk) + tuple(inputs.shape[1:]) + (str(dtype),)
        verdict = _cache.cached(owner, ("perturbation_fused_agrees", keep) + key + signature, lambda: [None])
    aux = ms.Tensor(np.zeros((n, 1)), dtype) if aux is None else aux
    if build_aux is None:  # the score's aux rows, one per perturbed image, repeated on the host
        aux = aux.asnumpy()
    base = ms.Tensor(baseline, dtype)
    sums = np.float64 if dtype == ms.float64 else np.float32  # float16 scores summed in float32

    def call(where, part, copy_rows, total):  # pylint: disable=unused-argument
        x, lab, a = part
        chunk_masks = _copy_tensor(copy_rows[0], dtype)
        acc = ms.Tensor(np.zeros((x.shape[0], num_targets, height * width), sums)) if total is None else total[0]
        if build_aux is None:
            return step(acc, x, lab, chunk_masks, base, ms.Tensor(np.repeat(a, chunk_masks.shape[0], 0), dtype))[:1]
        if verdict[0]:
            return step(acc, x, lab, chunk_masks, base, a)[:1]
        outputs = apart()(acc, x, lab, chunk_masks, base, rows(x, chunk_masks, base, a))
        if verdict[0] is None:   # if fused, every step fused: same maps at every call
            verdict[0], outputs = _fused_check(step, (acc, x, lab, chunk_masks, base, a), outputs, dtype)
        return outputs[:1]

    (out,) = blocked(call, (inputs, labels, aux), (masks,), chunk, fold=True)
    return _result(out.reshape(n, num_targets, height, width), key)


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
    def step(x, labels, kept, fill):
        b, k = kept.shape[0], kept.shape[1]
        images = (x.expand_dims(1) - fill) * kept.astype(x.dtype) + fill            # (b, k, C, H, W)
        scores = score_fn(images.reshape((b * k,) + x.shape[1:]), ops.zeros((b * k, 1), x.dtype))
        index = ops.broadcast_to(labels.expand_dims(1), (b, k, 1))
        return ops.gather_elements(scores.reshape(b, k, -1), 2, index).squeeze(2)  # (b, k)
    return _cache.compiled(step, checked=False)  # the scores are checked once, at the end


def removal_scores(build_score, inputs, labels, ranks, intervals, chunk, cache_key, *, reference=0.0,
                   fill=None):
    """score(x~_nj)[t_n] (N, S): sample n with the pixels of rank in [low_j, high_j) removed.

        x~_nj = x_n * K_nj + fill_nj * (1 - K_nj),     K_nj = 1 - 1[low_j <= rank_n < high_j]  (all channels)

    Through `blocked`: the intervals are its copies (a padded interval removes nothing), the
    scores of each call concatenated. The keep masks K of a call (b, k, 1, H, W) are built from
    the ranks on the host in one vectorised comparison and sent as booleans (a byte a pixel), so
    memory does not grow with the number of steps S; the kernel broadcasts each sample over its k
    masks, blends and scores (measured faster on CPU than building the masks in the kernel, or
    repeating the samples on the host).

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
    dtype = inputs.dtype
    constant = ms.Tensor(reference, dtype)

    def call(where, part, copy_rows):
        x, lab, rank = part
        low, high = (copy_rows[0][:, i].reshape(1, -1, 1, 1, 1) for i in (0, 1))
        kept = (rank[:, None] < low) | (rank[:, None] >= high)                      # (b, k, 1, H, W)
        if fill is None:
            values = constant
        else:
            values = fill(where.samples.start, where.samples.stop, where.copies.start, where.copies.stop)
            values = _pad_rows(_pad_rows(np.asarray(values, np.float32), kept.shape[0]).swapaxes(0, 1),
                               kept.shape[1]).swapaxes(0, 1)
            values = ms.Tensor(values, dtype)                                           # (b, k, C, H, W)
        return step(x, lab, ms.Tensor(kept), values)

    scores = blocked(call, (inputs, labels, np.asarray(ranks)[:, None]), (np.asarray(intervals).reshape(-1, 2),),
                     chunk)
    return _result(scores, key)


# --------------------------------------------------------------------------------------------
# Sums over copies of each input: the gradient counterpart of `perturbation_sums`.
#
# For samples x_n (with per-sample companions such as baselines or targets) and K copies described
# by per-copy rows c_s (a path position, a noise sample) with weights w_s,
#
#     S[n] = sum_s  step(x_n, c_s, w_s),
#
# evaluated by `blocked` in steps of at most P copies (P from `images_per_step`): the copies padded
# with zero rows (weight 0: they add nothing), padded samples dropped, each step's per-sample sums
# added on the host. Integrated Gradients' path positions, SmoothGrad's noise samples and ScoreCAM's
# channels all go through `copy_sums`; `gradient_sums` is its compiled gradient step.
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


def _copy_tensor(rows, dtype):
    """A block of per-copy rows as a Tensor: integer rows (ScoreCAM's channel indices) as int32,
    exact whatever `dtype` (float16 holds integers exactly only up to 2048, bfloat16 up to 256);
    real rows in `dtype`, through float64 for a float64 run (no float32 rounding of its
    quadrature weights or noise)."""
    rows = np.asarray(rows)
    if np.issubdtype(rows.dtype, np.integer):
        return ms.Tensor(rows.astype(np.int32))
    return ms.Tensor(rows.astype(np.float64 if dtype == ms.float64 else np.float32), dtype)


def _copy_totals(step, samples, copies, chunk, dtype):
    """`copy_sums`, as host arrays."""
    def call(where, part, copy_rows, total):  # pylint: disable=unused-argument
        sums = step(*part, *(_copy_tensor(c, dtype) for c in copy_rows))
        # read each step's sums (waiting for it): a step launched while the previous one still runs
        # competes with it for the cores (CPU: two back-to-back steps 1.4x slower than in turn)
        sums = tuple(s.asnumpy() for s in sums)
        return sums if total is None else tuple(t + s for t, s in zip(total, sums))
    return blocked(call, samples, copies, chunk, fold=True)


def copy_sums(step, samples, copies, chunk, dtype):
    """Sums over copies of each sample, through `blocked` (see the section comment above).

    Args:
        step: (sample blocks..., copy blocks...) -> tuple of per-sample sums over the k copies of
            the block, each with leading axis b; padded copies carry weight 0.
        samples: tuple of Tensors (or numpy arrays) with leading axis N (inputs, baselines, labels).
        copies: tuple of per-copy rows with leading axis K (arrays or lazy sets sliced `[i:j]`).
        chunk: P, the most copies (b * k) per step (see `images_per_step`).
        dtype: dtype of the copy rows handed to `step`.

    Returns the tuple of sums, each with leading axis N.
    """
    return tuple(ms.Tensor(s) for s in _copy_totals(step, samples, copies, chunk, dtype))


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
    (sums,) = _copy_totals(step, (inputs, baselines, labels), (alphas, weights), chunk, inputs.dtype)
    return _result(sums, key)
