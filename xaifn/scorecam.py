"""ScoreCAM (Wang et al., 2020) at a named layer's output A (N, K, h, w): each channel, upsampled
to the input's size and min-max normalised per sample, masks the input; the target's score on
the masked input weighs the channel:

    M_nk = norm(up(A_nk)),   s_nkj = sigma(f(x_n * M_nk))[t_nj],
    cam_nj = ReLU(sum_k softmax_k(s_nj)_k A_nk),                    resized like `xaifn.gradcam`

with norm(m) = (m - min m) / (max m - min m) (0 for a constant channel) and `up` the bilinear resize
of the CAM family. The activations come from `xaifn.gradcam`'s layer machinery (`reshape` as
there); the N * K masked images go through the chunked copy-sums primitive, one compiled forward
per step; all l target columns share them.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks
from xaifn._chunked import DEFAULT_CHUNK, bytes_per_image, copy_sums, images_per_step
from xaifn.gradcam import layer_cam, resize as resize_map
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


def _resized_scorecam_map(scores, activation, inputs):
    return resize_map(scorecam_map(scores, activation), inputs.shape[2:])


def _activation(activation, grads, size):  # pylint: disable=unused-argument
    """The `cam` of `layer_cam` that returns the (reshaped) layer output A itself."""
    return activation


# shared by every call (no network inside): compiled once per shape
_MAP = _cache.compiled(scorecam_map)
_RESIZED_MAP = _cache.compiled(_resized_scorecam_map)


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
    _checks.check_cell(net, "net")
    _checks.check_layer_name(net, layer)
    _checks.check_callable(activation_fn, "activation_fn")
    explained = _checks.check_explained(net, output, "net")
    labels = _checks.check_call(explained, inputs, targets, allow_2d=True, name="net")
    chunk = _checks.check_chunk(chunk)
    _checks.check_bool(resize, "resize")
    activation = layer_cam(net, inputs, labels[:, 0], layer, reshape, _activation, output)   # (N, K, h, w)
    num = activation.shape[1]
    step = _cache.cached(explained, ("scorecam", _cache.callable_key(activation_fn)),
                         lambda: _score_step(probability_fn(_cache.evaluable(explained), activation_fn)))
    (scores,) = copy_sums(step, (inputs, activation, labels), (np.arange(num), np.ones(num)),
                          images_per_step(chunk, bytes_per_image(explained, inputs)), inputs.dtype)  # (N, l, K)
    return _RESIZED_MAP(scores, activation, inputs) if resize else _MAP(scores, activation)
