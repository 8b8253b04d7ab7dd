"""GradCAM (Selvaraju et al., 2017) on a named layer's output A (N, K, h, w):

    g = d(sum_n f(x)[n, t_n]) / dA,   alpha_k = mean_hw g_k,   cam = ReLU(sum_k alpha_k A_k),

resized to the input's (H, W) by float bilinear interpolation with half-pixel centres.
`layer=''` means the input itself (A = x).

A layer whose output is not (N, K, h, w) is read through a `reshape` function applied to both A
and dA (pytorch-grad-cam's ``reshape_transform``): token sequences (N, T, D) of vision
transformers, with or without a class token, and channel-last maps (N, h, w, C) are recognised
from the shape (`reshape_for`); anything else needs ``reshape=``. `layer_cam` is the layer
machinery every gradient-based CAM shares: give it a traceable ``cam(A, dA, size)``.
"""
import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks, _views
from xaifn.gradients import input_gradient, target_logit_sum


def layer_probe_view(network, layer, activation_shape):
    """A parameter-sharing eval-mode view of `network` that exposes the output of `layer`.

    `activation_shape` is the layer's output shape (N, ...) for the batch to be explained.
    Build it once, outside any compiled code, and pass it to `layer_activation_gradient`.
    """
    return _views.layer_probe_view(network, layer, activation_shape)


def layer_activation_gradient(probed, inputs, targets):
    """(A, dA): the probed layer's output and d(sum_n f(x)[n, t_n]) / dA. Traceable.

    `probed` comes from `layer_probe_view`, built for this batch's activation shape.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import LeNet5
        >>> probed = xaifn.layer_probe_view(LeNet5(), "conv2", (2, 16, 10, 10))
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
        >>> a, g = xaifn.layer_activation_gradient(probed, x, ms.Tensor([1, 2], ms.int32))
        >>> a.shape, g.shape
        ((2, 16, 10, 10), (2, 16, 10, 10))
    """
    probe = probed.xaifn_probe

    def score(x, labels):
        return target_logit_sum(probed, x, labels)
    (grads,) = ms.grad(score, grad_position=None, weights=[probe.probe])(inputs, targets)
    return probe.store.value(), grads


def gradcam_cam(activation, grads):
    """sum_k mean_hw(dA_k) A_k, before the ReLU: (N, 1, h, w). Traceable."""
    return (grads.mean(axis=(2, 3), keep_dims=True) * activation).sum(axis=1, keepdims=True)


def gradcam_map(activation, grads, size):
    """ReLU(sum_k mean_hw(dA_k) A_k) resized bilinearly to `size` (H, W): (N, 1, H, W). Traceable."""
    return resize(ops.relu(gradcam_cam(activation, grads)), size)


def resize(cam, size):
    """(N, l, h, w) -> (N, l, H, W) by float bilinear interpolation, half-pixel centres. Traceable."""
    if tuple(cam.shape[2:]) == tuple(size):
        return cam
    return ops.interpolate(cam, size=size, mode="bilinear", align_corners=False)


_CAM_MAPS = {}


def cam_map(cam_fn, resized=True):
    """The `cam(A, dA, size)` of `layer_cam` for a CAM variant `cam_fn(A, dA)` (the map before the
    ReLU): ReLU, then resized to `size` unless `resized` is False. One function object per
    (cam_fn, resized), so that its kernels are cached."""
    key = (cam_fn, resized)
    if key not in _CAM_MAPS:
        def at_input_size(activation, grads, size):
            return resize(ops.relu(cam_fn(activation, grads)), size)

        def at_layer_size(activation, grads, size):  # pylint: disable=unused-argument
            return ops.relu(cam_fn(activation, grads))
        _CAM_MAPS[key] = at_input_size if resized else at_layer_size
    return _CAM_MAPS[key]


# ---- reshape: a layer's output as (N, K, h, w) -------------------------------------------------

def identity(activation):
    """(N, K, h, w) as it is."""
    return activation


def channels_last(activation):
    """(N, h, w, C) -> (N, C, h, w), e.g. a channel-last stage output. Traceable."""
    return activation.transpose(0, 3, 1, 2)


def tokens_to_grid(extra, grid):
    """The reshape of a token sequence (N, extra + gh * gw, D) -> (N, D, gh, gw), dropping the
    `extra` leading tokens (a ViT's class token: extra=1) and laying the patch tokens out row by
    row on the (gh, gw) grid. Traceable.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> xaifn.tokens_to_grid(1, (2, 3))(ms.Tensor(np.zeros((4, 7, 16)), ms.float32)).shape
        (4, 16, 2, 3)
    """
    rows, cols = grid

    def reshape(tokens):
        patches = tokens[:, extra:, :]
        return patches.reshape(patches.shape[0], rows, cols, patches.shape[2]).transpose(0, 3, 1, 2)
    return reshape


def _is_grid(rows, cols, size):
    """True if a (rows, cols) map can be the input (H, W) seen with one stride (within a pixel)."""
    if not 1 <= rows <= size[0] or not 1 <= cols <= size[1]:
        return False
    return abs(size[0] / rows - size[1] / cols) <= 1 + 0.1 * max(size[0] / rows, size[1] / cols)


def _token_grids(tokens, size):
    """[(extra, (rows, cols))]: the ways `tokens` = extra + rows * cols can be a grid of the input."""
    found = []
    for extra in (0, 1):
        count = tokens - extra
        found += [(extra, (r, count // r)) for r in range(1, count + 1)
                  if count % r == 0 and _is_grid(r, count // r, size)]
    return found


def reshape_for(layer, activation_shape, size):
    """(reshape, key): the built-in reshape of a layer output of `activation_shape` for an input of
    spatial `size`, recognised from the shape, or a ValueError asking for ``reshape=``.

    (N, K, h, w) whose (h, w) can be a grid of the input: as it is; otherwise (N, h, w, C) whose
    (h, w) can: channel-last (a 4-D output is channel-last only when its last axis cannot be a
    width of the input, e.g. C > W: pass ``reshape=channels_last`` otherwise). (N, T, D): T patch tokens on one grid of the input, or a class token
    followed by them. Any other shape, or a token count that fits several grids, is refused.
    """
    shape = tuple(activation_shape)
    ask = (f"pass `reshape=`, a function turning the layer's output into (N, K, h, w) (for example "
           "xaifn.tokens_to_grid(extra_tokens, (rows, cols)) or xaifn.channels_last).")
    if len(shape) == 4 and _is_grid(shape[2], shape[3], size):
        return identity, ("identity",)
    if len(shape) == 4 and _is_grid(shape[1], shape[2], size):
        return channels_last, ("channels_last",)
    if len(shape) == 3:
        grids = _token_grids(shape[1], size)
        if len(grids) == 1:
            extra, grid = grids[0]
            return tokens_to_grid(extra, grid), ("tokens", extra, grid)
        why = "fits no grid of the input" if not grids else f"fits several grids of the input {grids}"
        raise ValueError(f"`layer` {layer!r} outputs {shape[1]} tokens (shape {shape}), which {why}; {ask}")
    raise ValueError(f"`layer` {layer!r} outputs shape {shape}, which GradCAM cannot read as a 4-D "
                     f"(N, K, h, w) map of the {tuple(size)} input; {ask}")


def _check_reshape(reshape, layer, activation_shape, dtype):
    """Apply `reshape` eagerly to a zero layer output; its result must be (N, K, h, w)."""
    with _views.pynative():
        result = reshape(ms.Tensor(np.zeros(activation_shape), dtype))
    shape = tuple(getattr(result, "shape", ()))
    if not isinstance(result, ms.Tensor) or len(shape) != 4 or shape[0] != activation_shape[0]:
        raise ValueError(f"`reshape` must turn the output of `layer` {layer!r} {tuple(activation_shape)} into "
                         f"(N, K, h, w) with N = {activation_shape[0]}, got "
                         f"{shape if isinstance(result, ms.Tensor) else type(result).__name__}.")


# ---- the layer machinery of the CAM family -----------------------------------------------------

def _finite(activation, grads):
    """True when A and dA are finite: the map's ReLU would hide NaN (MindSpore's CPU ReLU drops it)."""
    return _cache.finite_mask(activation).all() & _cache.finite_mask(grads).all()


def _compiled_input_cam(view, cam):
    def kernel(inputs, targets):
        grads = input_gradient(view, inputs, targets)
        return cam(inputs, grads, inputs.shape[2:]), _finite(inputs, grads)
    return _cache.compiled(kernel)


def _compiled_layer_cam(probed, reshape, cam):
    def kernel(inputs, targets):
        activation, grads = layer_activation_gradient(probed, inputs, targets)
        return cam(reshape(activation), reshape(grads), inputs.shape[2:]), _finite(activation, grads)
    return _cache.compiled(kernel)


def _checked(kernel, inputs, labels, layer):
    """kernel(inputs, labels)'s map, or FloatingPointError if the layer's output or its gradient
    was not finite (an overflow in the network: the map would look plausible)."""
    result, finite = kernel(inputs, labels)
    if not bool(finite):
        raise FloatingPointError(f"CAM at layer {layer!r}: the network produced non-finite (NaN or Inf) "
                                 "activations or gradients for these inputs, so no map is returned. Check "
                                 "its weights, or run it in a wider float type.")
    return result


@_cache.one_call
def layer_cam(net, inputs, targets, layer, reshape, cam, output=None):
    """The map `cam(A, dA, (H, W))` of a gradient-based CAM at `layer`, compiled and cached.

    Validates every argument, traces the layer once per input signature, resolves `reshape`
    (None: `reshape_for`; a callable: applied to A and dA, checked to give (N, K, h, w)) and
    builds one compiled kernel per (network, output, cam, layer, shapes, reshape). `cam` must be
    traceable and keep its identity across calls (a module-level function). `output` chooses the
    explained output of a network returning several (`xaifn.gradient`).
    """
    _checks.check_cell(net, "net")
    _checks.check_layer_name(net, layer)
    _checks.check_inputs(inputs)
    if reshape is not None:
        _checks.check_callable(reshape, "reshape")
    explained = _checks.check_explained(net, output, "net")
    size = tuple(inputs.shape[2:])
    if layer == "":
        if reshape is not None:
            raise ValueError("`reshape` applies to a layer's output; with layer='' the input (N, C, H, W) "
                             "is used as it is.")
        labels = _checks.check_call(explained, inputs, targets, name="net")
        kernel = _cache.cached(explained, ("layer_cam", cam, ""),
                               lambda: _compiled_input_cam(_cache.evaluable(explained), cam))
        return _checked(kernel, inputs, labels, layer)
    inner = layer if output is None else _views.OUTPUT_PREFIX + layer   # its name in `explained`
    sample = (tuple(inputs.shape[1:]), inputs.dtype)
    out_shape, act_shape = _cache.cached(explained, ("trace", inner) + sample,
                                         lambda: _views.trace_layer(explained, inner, *sample))
    if not isinstance(act_shape, tuple):
        raise ValueError(f"`layer` {layer!r} returns a {act_shape.__name__}, not one Tensor; choose a layer "
                         "whose output is a single Tensor.")
    labels = _checks.check_targets(targets, inputs.shape[0], _checks.check_output_width(out_shape, "net"))
    if reshape is None:
        reshape, reshape_key = reshape_for(layer, act_shape, size)
    else:
        reshape_key = reshape
        _cache.cached(explained, ("reshape", inner, reshape) + sample,
                      lambda: _check_reshape(reshape, layer, act_shape, inputs.dtype))
    act_shape = (inputs.shape[0],) + act_shape[1:]
    kernel = _cache.cached(explained, ("layer_cam", cam, inner, act_shape, inputs.dtype, reshape_key),
                           lambda: _compiled_layer_cam(layer_probe_view(explained, inner, act_shape), reshape, cam))
    return _checked(kernel, inputs, labels, layer)


def gradcam(net, inputs, targets, layer="", reshape=None, resize=True, *, output=None):  # pylint: disable=redefined-outer-name
    """GradCAM saliency at the cell named `layer` (a name of `net.cells_and_names()`), (N, 1, H, W).

    The layer must be called exactly once per forward pass; '' explains at the input. The backward
    pass stops at the layer. `reshape` turns the layer's output into (N, K, h, w) (None: recognised
    from the shape, see `reshape_for`; ViT blocks and Swin stages need nothing). `resize=False`
    returns the map at the layer's resolution (N, 1, h, w). `output` as in `xaifn.gradient`.

    Example:
        >>> import numpy as np, mindspore as ms, xaifn
        >>> from xaifn.models import SmallResNet
        >>> x = ms.Tensor(np.random.rand(2, 3, 32, 48), ms.float32)
        >>> xaifn.gradcam(SmallResNet(), x, 5, layer="stages.2").shape  # non-square is fine
        (2, 1, 32, 48)
    """
    _checks.check_bool(resize, "resize")
    return layer_cam(net, inputs, targets, layer, reshape, gradcam_map if resize else cam_map(gradcam_cam, False),
                     output)
