"""ScoreCAM (Wang et al., 2020) at a named layer's output A (N, K, h, w): each channel, upsampled
to the input's size and min-max normalised per sample, masks the input; the target's score on
the masked input weighs the channel:

    M_nk = norm(up(A_nk)),   s_nkj = sigma(f(x_n * M_nk))[t_nj],
    cam_nj = ReLU(sum_k softmax_k(s_nj)_k A_nk),                    resized like `xaifn.gradcam`

with norm(m) = (m - min m) / (max m - min m) (0 for a constant channel) and `up` the bilinear resize
of the CAM family. The activations come from `xaifn.gradcam`'s forward-only layer machinery
(`layer_forward`: one compiled forward pass, no backward; `reshape` as there); the N * K masked
images go through the chunked copy-sums primitive, one compiled forward per step; all l target
columns share them.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, bytes_per_image, copy_sums, images_per_step
from xaifn.gradcam import layer_forward, resize as resize_map
from xaifn.rise import probability_fn


def normalised_masks(activation, size):
    """Channels (b, k, h, w) resized to `size` and min-max normalised each: (b, k, H, W). Traceable."""
    up = resize_map(activation, size)
    flat = up.reshape(up.shape[0], up.shape[1], -1)
    low = flat.min(axis=2, keepdims=True)
    span = flat.max(axis=2, keepdims=True) - low
    return ((flat - low) / (span + (span == 0).astype(span.dtype))).reshape(up.shape)   # constant: 0


def _score_step(score_fn):
    """Per-sample sums over a block of channel indices c of w_c * s_nc * e_c: (b, l, K)."""
    def step(x, activation, labels, index, weights):
        b, k, num = x.shape[0], index.shape[0], activation.shape[1]
        channels = ops.gather(activation, index.astype(ms.int32), 1)             # (b, k, h, w)
        masks = normalised_masks(channels, x.shape[2:]).expand_dims(2)          # (b, k, 1, H, W)
        images = (x.expand_dims(1) * masks).reshape((b * k,) + tuple(x.shape[1:]))
        scores = score_fn(images, None).reshape(b, k, -1)
        picked = ops.gather_elements(scores, 2, ops.broadcast_to(labels.expand_dims(1), (b, k, labels.shape[1])))
        slots = ops.one_hot(index.astype(ms.int32), num, ops.ones((), x.dtype), ops.zeros((), x.dtype))
        return (ops.matmul(picked.transpose(0, 2, 1).astype(x.dtype), slots * weights.expand_dims(1)),)
    return _cache.compiled(step, checked=False)  # the map is checked once, at the end


def scorecam_map(scores, activation):
    """ReLU(sum_k softmax_k(scores) A_k) for scores (N, l, K) and A (N, K, h, w): (N, l, h, w). Traceable."""
    n, num, h, w = activation.shape
    weights = ops.softmax(scores, axis=-1)
    return ops.relu(ops.matmul(weights, activation.reshape(n, num, h * w))).reshape(n, -1, h, w)


def _checked_map(scores, activation, size):
    """(the map, resized to `size` unless it is None; whether the scores and the map are finite:
    the ReLU would hide a NaN score, as MindSpore's CPU ReLU drops NaN). Traceable."""
    cam = scorecam_map(scores, activation)
    cam = cam if size is None else resize_map(cam, size)
    return cam, _cache.finite_mask(scores).all() & _cache.finite_mask(cam).all()


def _resized_map(scores, activation, inputs):
    return _checked_map(scores, activation, inputs.shape[2:])


def _layer_map(scores, activation):
    return _checked_map(scores, activation, None)


def _activation(activation, size):  # pylint: disable=unused-argument
    """The `fn` of `layer_forward` that returns the (reshaped) layer output A itself."""
    return activation


# shared by every call (no network inside): compiled once per shape; scores and map checked in the graph
_MAP = _cache.compiled(_layer_map, checked=False)
_RESIZED_MAP = _cache.compiled(_resized_map, checked=False)


@_cache.one_call
def scorecam(net, activation_fn, inputs, targets, layer="", reshape=None, chunk=DEFAULT_CHUNK, resize=True, *,
             output=None):
    """ScoreCAM at the cell named `layer`: (N, l, H, W) for targets (N, l) (l = 1 for int, 0-D
    or 1-D targets), or (N, l, h, w) with `resize=False`.

    Args:
        net, inputs, layer, reshape: as in `xaifn.gradcam`.
        activation_fn: logits -> scores, e.g. `nn.Softmax()` (the paper's probabilities) or an
            identity function (pytorch-grad-cam's logits).
        targets: int, list of N ints, 0-D/1-D/(N, l) integer Tensor.
        chunk: the memory of one compiled step (a byte size such as "128MiB", the default) or the
            number of masked images per compiled forward (an int), as in `xaifn.rise`.
        output: which output of a network returning several is explained (`xaifn.gradient`).

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from mindspore import nn
        >>> from xaifn.models import LeNet5
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> xaifn.scorecam(LeNet5(), nn.Softmax(), x, 1, layer="conv2").shape
        (2, 1, 32, 32)
    """
    _checks.check_callable(activation_fn, "activation_fn")
    chunk = _checks.check_chunk(chunk)
    _checks.check_bool(resize, "resize")
    activation, labels = layer_forward(net, inputs, targets, layer, reshape, _activation, output,
                                       allow_2d=True)                                   # (N, K, h, w), (N, l)
    explained = _checks.check_explained(net, output, "net")
    num = activation.shape[1]
    step = _cache.cached(explained, ("scorecam", _cache.callable_key(activation_fn)),
                         lambda: _score_step(probability_fn(_cache.evaluable(explained), activation_fn)))
    (scores,) = copy_sums(step, (inputs, activation, labels), (np.arange(num), np.ones(num)),
                          images_per_step(chunk, bytes_per_image(explained, inputs)), inputs.dtype)  # (N, l, K)
    cam, finite = _RESIZED_MAP(scores, activation, inputs) if resize else _MAP(scores, activation)
    if not bool(finite):
        _cache.check_finite_result((scores, cam), "scorecam")   # raises, naming the method
    return cam
