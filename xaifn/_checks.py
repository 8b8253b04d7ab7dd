"""Edge checks: turn what a user passed into canonical values, or raise a clear error.

Every public entry point calls these before any computation; nothing below them validates again.
Errors name the argument and say what was expected.
"""
import collections
import difflib
import numbers
import re

import numpy as np
import mindspore as ms
from mindspore import nn

from xaifn import _cache, _views

_FLOAT_DTYPES = (ms.float16, ms.float32, ms.float64, ms.bfloat16)


@_cache.serialised
def check_inputs(inputs, name="inputs"):
    """Return `inputs` if it is a finite float Tensor of shape (N, C, H, W) with N >= 1."""
    check_finite(check_input_form(inputs, name), name)
    return inputs


def check_input_form(inputs, name="inputs"):
    """Return `inputs` if it is a float Tensor of shape (N, C, H, W) with N >= 1 (values unread)."""
    if not isinstance(inputs, ms.Tensor):
        raise TypeError(f"`{name}` must be a mindspore.Tensor of shape (N, C, H, W), "
                        f"got {type(inputs).__name__}.")
    if inputs.ndim != 4:
        raise ValueError(f"`{name}` must be a 4-D Tensor (N, C, H, W), got shape {tuple(inputs.shape)}.")
    if inputs.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"`{name}` must have a floating-point dtype, got {inputs.dtype}.")
    if 0 in inputs.shape:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(inputs.shape)}.")
    return inputs


def check_finite(values, name):
    """Raise ValueError if the float Tensor `values` holds NaN or Inf (MindSpore's CPU ReLU and
    max-pool would silently drop NaN, giving a normal-looking map)."""
    if not _cache.all_finite(values):
        bad = int(values.size - int(_cache.finite_mask(values).sum()))
        raise ValueError(f"`{name}` must be finite, got {bad} NaN or Inf value(s) of {values.size}.")


def check_cell(network, name="network"):
    """Return `network` if it is an nn.Cell."""
    if not isinstance(network, nn.Cell):
        raise TypeError(f"`{name}` must be a mindspore.nn.Cell, got {type(network).__name__}.")
    return network


def check_callable(fn, name):
    """Return `fn` if it can be called."""
    if not callable(fn):
        raise TypeError(f"`{name}` must be callable (an nn.Cell or a function), got {type(fn).__name__}.")
    return fn


def check_positive_int(value, name):
    """Return `value` as an int if it is a positive integer (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be a positive int, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value}.")
    return int(value)


@_cache.serialised
def check_targets(targets, num_samples, num_classes, allow_2d=False):
    """Canonical int32 targets of shape (N, l): one row of l labels per sample.

    Accepts a Python int, a 0-D integer Tensor or array (one label for every sample), a 1-D integer
    Tensor/array or list/tuple of N ints, and, when `allow_2d`, an (N, l) integer Tensor/array.
    Every label must lie in [0, num_classes).
    """
    shapes = "an int, a 0-D/1-D integer Tensor" + (" or an (N, l) integer Tensor" if allow_2d else "")
    if isinstance(targets, bool):
        raise TypeError(f"`targets` must be {shapes}, got bool.")
    if isinstance(targets, numbers.Integral):
        labels = np.full((num_samples, 1), int(targets), dtype=np.int64)
    else:
        labels = _label_array(targets, shapes)
        if labels.ndim == 0:
            labels = np.full((num_samples, 1), int(labels), dtype=np.int64)
        elif labels.ndim > (2 if allow_2d else 1):
            raise ValueError(f"`targets` must be {shapes}, got shape {labels.shape}.")
        if labels.shape[0] != num_samples:
            raise ValueError(f"`targets` must have one entry per input (length {num_samples}), "
                             f"got shape {labels.shape}.")
        labels = labels.reshape(num_samples, -1)
        if labels.shape[1] == 0:
            raise ValueError("`targets` must hold at least one label per sample, got shape "
                             f"{labels.shape}.")
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        raise ValueError(f"`targets` must lie in [0, {num_classes}) (the network outputs "
                         f"{num_classes} classes), got {int(labels[bad][0])}.")
    return ms.Tensor(labels.astype(np.int32))


def _label_array(targets, shapes):
    if isinstance(targets, ms.Tensor):
        array = targets.asnumpy()
    elif isinstance(targets, np.ndarray):
        array = targets
    elif isinstance(targets, (list, tuple)):
        if not all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in targets):
            raise TypeError(f"`targets` given as a list/tuple must hold ints only, got {targets!r}.")
        array = np.asarray(targets, dtype=np.int64)
    else:
        raise TypeError(f"`targets` must be {shapes}, got {type(targets).__name__}.")
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"`targets` must have an integer dtype, got {array.dtype}.")
    return array.astype(np.int64)


@_cache.serialised
def check_layer_name(network, layer):
    """Return the cell named `layer` in `network` ('' means the input itself: returns None)."""
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a str (a name from network.cells_and_names()), "
                        f"got {type(layer).__name__}.")
    if isinstance(network, nn.Cell):  # GradCAM's edge check of the network
        _cache.cached(network, ("finite parameters",), lambda: check_finite_parameters(network, "net"))
    if layer == "":
        return None
    names = dict(network.cells_and_names())
    names.pop("", None)
    if layer not in names:
        close = difflib.get_close_matches(layer, list(names), n=5, cutoff=0.4)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise ValueError(f"`layer` {layer!r} is not a cell of the network.{hint}")
    return names[layer]


def check_output_width(output_shape, name="network"):
    """Return L from the output shape (N, L) of the network, or raise if it is not 2-D."""
    if len(output_shape) != 2:
        raise ValueError(f"`{name}` must return logits of shape (N, L), got shape {tuple(output_shape)}.")
    return int(output_shape[1])


#: What the eager check forward learnt: output shape, and bytes of the intermediate outputs of
#: one sample (the sum over the leaf cells' outputs; None for a plain function).
Profile = collections.namedtuple("Profile", "output_shape activation_bytes")


def profile(net_fn, inputs):
    """The Profile of `net_fn` for samples like `inputs`'s, cached per (net_fn, sample shape)."""
    sample = (tuple(inputs.shape[1:]), inputs.dtype)
    return _cache.cached(net_fn, ("profile",) + sample,
                         lambda: _forward_profile(_cache.evaluable(net_fn), *sample))


def _forward_profile(view, sample_shape, dtype):
    leaves = [c for _, c in view.cells_and_names() if not c.name_cells()] if isinstance(view, nn.Cell) else []
    sizes = []

    def record(cell, args, output):  # pylint: disable=unused-argument
        sizes.extend(o.nbytes for o in (output if isinstance(output, (tuple, list)) else (output,))
                     if isinstance(o, ms.Tensor))
    handles = [leaf.register_forward_hook(record) for leaf in leaves]
    try:
        shape = _views.output_shape(view, sample_shape, dtype)
    except (RuntimeError, TypeError, ValueError, IndexError) as error:
        raise ValueError(f"`inputs` of sample shape {tuple(sample_shape)} and dtype {dtype} do not fit "
                         f"the network{_expected_input(view)}: its forward pass failed with: "
                         f"{_first_line(error)}") from None
    finally:
        for handle in handles:
            handle.remove()
    return Profile(shape, sum(sizes) if leaves else None)


def _expected_input(view):
    """' (it expects C input channels)' from the first layer with `in_channels`, or ''."""
    if isinstance(view, nn.Cell):
        for _, cell in view.cells_and_names():
            channels = getattr(cell, "in_channels", None)
            if isinstance(channels, int) and isinstance(cell, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                return f" (its first convolution expects {channels} input channels)"
    return ""


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith("-")]
    return lines[0] if lines else type(error).__name__


@_cache.serialised
def check_call(net_fn, inputs, targets, allow_2d=False, name="net_fn"):
    """Validate (net_fn, inputs, targets) of an explanation; return canonical (N, l) targets.

    The number of classes L comes from one eager forward pass of a single zero sample, cached
    per (net_fn, sample shape), so that out-of-range labels are refused before any real work.
    A forward pass that fails there (wrong channel count or image size) is a ValueError.
    """
    check_callable(net_fn, name)
    check_inputs(inputs)
    dtype = network_dtype(net_fn)
    if dtype is not None and inputs.dtype != dtype:
        raise TypeError(f"`inputs` must have the dtype of the network's Parameters, {dtype}, got "
                        f"{inputs.dtype}; pass inputs.astype(mindspore.{str(dtype).lower()}).")
    if isinstance(net_fn, nn.Cell):  # once per weights version: NaN/Inf weights give NaN logits
        _cache.cached(net_fn, ("finite parameters",), lambda: check_finite_parameters(net_fn, name))
    num_classes = check_output_width(profile(net_fn, inputs).output_shape, name)
    return check_targets(targets, inputs.shape[0], num_classes, allow_2d)


def check_finite_parameters(network, name):
    """Return True if every float Parameter of `network` is finite, else raise ValueError naming one."""
    for param in network.get_parameters():
        if param.dtype in _FLOAT_DTYPES and not bool(_cache.finite_mask(param).all()):
            raise ValueError(f"`{name}` has NaN or Inf in its Parameter {param.name!r}: its logits would "
                             "not be finite.")
    return True


#: A memory budget in bytes for the `chunk` argument (see `check_chunk`).
ByteBudget = collections.namedtuple("ByteBudget", "bytes")
_UNITS = {"b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30}


def check_chunk(chunk):
    """Return `chunk` as an int (perturbed images per step) or a ByteBudget.

    Accepts a positive int (images) or a string "<number><unit>" with unit B, KB, MB, GB (powers of
    1000) or KiB, MiB, GiB (powers of 1024), e.g. "256MiB".
    """
    if isinstance(chunk, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kKmMgG]?i?[bB])\s*", chunk)
        if match is None or match.group(2).lower() not in _UNITS or float(match.group(1)) <= 0:
            raise ValueError(f"`chunk` given as a string must be a byte size such as '256MiB' or "
                             f"'1GB', got {chunk!r}.")
        return ByteBudget(int(float(match.group(1)) * _UNITS[match.group(2).lower()]))
    if isinstance(chunk, bool) or not isinstance(chunk, numbers.Integral):
        raise TypeError(f"`chunk` must be a positive int (images per step) or a byte size such as "
                        f"'256MiB', got {type(chunk).__name__}.")
    return check_positive_int(chunk, "chunk")


def network_dtype(net_fn):
    """The float dtype shared by all of a Cell's float Parameters; None for a plain function, a
    Cell without float Parameters, or one mixing float dtypes."""
    if not isinstance(net_fn, nn.Cell):
        return None
    return _cache.cached(net_fn, ("dtype",), lambda: _parameters_dtype(net_fn))


def _parameters_dtype(network):
    dtypes = {p.dtype for p in network.get_parameters() if p.dtype in _FLOAT_DTYPES}
    return dtypes.pop() if len(dtypes) == 1 else None


def check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk):
    """Validate the arguments every perturbation method shares; return (inputs, (N, l) labels,
    chunk), the inputs cast to the dtype of the network's Parameters (the perturbed images are
    xaifn's to make, so a float64 batch for a float32 network is the user's evident intent)."""
    check_callable(activation_fn, "activation_fn")
    dtype = network_dtype(net_fn) if isinstance(check_input_form(inputs), ms.Tensor) else None
    if dtype is not None and inputs.dtype != dtype:
        inputs = inputs.astype(dtype)
    labels = check_call(net_fn, inputs, targets, allow_2d=True)  # reads the (cast) values once
    check_activation(activation_fn, check_output_width(profile(net_fn, inputs).output_shape), inputs.dtype)
    return inputs, labels, check_chunk(chunk)


def check_activation(activation_fn, num_classes, dtype):
    """Raise ValueError unless `activation_fn` maps logits (N, L) to scores (N, L): tried eagerly
    on two rows of zero logits (a reduction over the batch or the classes shows in the shape)."""
    try:
        scores = activation_fn(ms.Tensor(np.zeros((2, num_classes)), dtype))
    except (RuntimeError, TypeError, ValueError) as error:
        raise ValueError(f"`activation_fn` must map logits (N, {num_classes}) to scores (N, {num_classes}); "
                         f"on two rows of zeros it failed with: {_first_line(error)}") from None
    if not isinstance(scores, ms.Tensor) or tuple(scores.shape) != (2, num_classes):
        got = f"shape {tuple(scores.shape)}" if isinstance(scores, ms.Tensor) else type(scores).__name__
        raise ValueError(f"`activation_fn` must map logits (N, {num_classes}) to scores (N, {num_classes}), "
                         f"got {got} for logits (2, {num_classes}).")


def check_size(size, name):
    """Return (H, W) from an int or a pair of positive ints."""
    pair = (size, size) if isinstance(size, numbers.Integral) and not isinstance(size, bool) else size
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"`{name}` must be a positive int or a pair (height, width) of them, got {size!r}.")
    return tuple(check_positive_int(v, name) for v in pair)


def check_probability(value, name):
    """Return `value` as a float if it is a real number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a float in (0, 1], got {type(value).__name__}.")
    if not 0 < value <= 1:
        raise ValueError(f"`{name}` must lie in (0, 1], got {value}.")
    return float(value)


def check_seed(seed):
    """Return `seed` if it is a non-negative int, as `np.random.default_rng` expects."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"`seed` must be a non-negative int, got {type(seed).__name__}.")
    if seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed}.")
    return int(seed)


def check_real(value, name):
    """Return `value` as a float if it is a finite real number (NaN, Inf: ValueError)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a finite real number, got {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"`{name}` must be a finite real number, got {value!r}.")
    return float(value)


@_cache.serialised
def check_masks(masks, height, width):
    """Return masks (K, 1, H, W) with values in [0, 1] as an array or a lazy mask set."""
    if hasattr(masks, "_render") and hasattr(masks, "shape"):  # xaifn's lazy mask sets
        if tuple(masks.shape[1:]) != (1, height, width):
            raise ValueError(f"`masks` must have shape (K, 1, {height}, {width}), got {masks.shape}.")
        return masks
    if isinstance(masks, ms.Tensor):
        masks = masks.asnumpy()
    if not isinstance(masks, np.ndarray):
        raise TypeError("`masks` must be a Tensor or array (K, 1, H, W), or a RiseMasks, "
                        f"got {type(masks).__name__}.")
    if not np.issubdtype(masks.dtype, np.floating) and masks.dtype != np.bool_:
        raise TypeError(f"`masks` must hold floats in [0, 1], got dtype {masks.dtype}.")
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[2:] != (height, width) or not masks.shape[0]:
        raise ValueError(f"`masks` must have shape (K, 1, {height}, {width}) with K >= 1, "
                         f"got {masks.shape}.")
    low, high = masks.min(), masks.max()  # NaN propagates into both: refused below
    if not (low >= 0 and high <= 1):
        raise ValueError(f"`masks` must be finite and lie in [0, 1], got values in [{low}, {high}].")
    return masks.astype(np.float32, copy=False)


def check_window(value, name, image_size):
    """Return a pair of positive ints no larger than the image (H, W)."""
    pair = check_size(value, name)
    if pair[0] > image_size[0] or pair[1] > image_size[1]:
        raise ValueError(f"`{name}` {pair} must not exceed the image size {tuple(image_size)}.")
    return pair


@_cache.serialised
def check_features(features, num_features):
    """Return `features` if it is a float Tensor (N, F) with F == num_features."""
    if not isinstance(features, ms.Tensor):
        raise TypeError(f"`features` must be a mindspore.Tensor (N, F), got {type(features).__name__}.")
    if features.ndim != 2 or features.shape[1] != num_features:
        raise ValueError(f"`features` must have shape (N, {num_features}), got {tuple(features.shape)}.")
    if features.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"`features` must have a floating-point dtype, got {features.dtype}.")
    check_finite(features, "features")
    return features


def is_real(dtype):
    """Whether values of `dtype` are real numbers: integers or floats (not bools, complex numbers or
    objects)."""
    return np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)


def check_saliency(saliency, num_samples=None, size=None, name="saliency"):
    """Return saliency maps (N, c, H, W) averaged over their c channels: a float64 array (N, H, W).

    Accepts a Tensor or a numpy array; N and (H, W) must match `num_samples` and `size` when given;
    NaN and inf are refused.
    """
    if isinstance(saliency, ms.Tensor):
        saliency = saliency.asnumpy()
    if not isinstance(saliency, np.ndarray):
        raise TypeError(f"`{name}` must be a Tensor or array (N, 1, H, W), got {type(saliency).__name__}.")
    if not is_real(saliency.dtype):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {saliency.dtype}.")
    if saliency.ndim != 4 or 0 in saliency.shape:
        raise ValueError(f"`{name}` must be a non-empty 4-D (N, c, H, W) map, got shape {saliency.shape}.")
    expected = (saliency.shape[0] if num_samples is None else num_samples,) + \
        (saliency.shape[2:] if size is None else tuple(size))
    if (saliency.shape[0],) + saliency.shape[2:] != expected:
        raise ValueError(f"`{name}` must have shape ({expected[0]}, c, {expected[1]}, {expected[2]}) "
                         f"(one map per input), got {saliency.shape}.")
    if not np.all(np.isfinite(saliency)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf).")
    return saliency.astype(np.float64).mean(axis=1)


def check_maps(maps, num_samples, name):
    """Return explanation maps (N, ...) of any layout, as a float32 Tensor: real numbers, one map
    per input, finite."""
    values = maps.asnumpy() if isinstance(maps, ms.Tensor) else maps
    if not isinstance(values, np.ndarray):
        raise TypeError(f"`{name}` must be a Tensor or array (N, ...) of maps, got {type(maps).__name__}.")
    if not is_real(values.dtype):
        raise TypeError(f"`{name}` must hold real numbers, got dtype {values.dtype}.")
    if values.ndim < 2 or values.shape[0] != num_samples or 0 in values.shape:
        raise ValueError(f"`{name}` must have shape ({num_samples}, ...) (one non-empty map per input), "
                         f"got {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf).")
    return ms.Tensor(values.astype(np.float32))


def check_region_masks(masks, num_samples, size, name="masks"):
    """Return ground-truth regions (N, 1, H, W) (non-zero = inside) as a bool array (N, H, W)."""
    if masks is None:
        raise ValueError(f"`{name}` is required: a ground-truth mask (N, 1, H, W) per input.")
    if isinstance(masks, ms.Tensor):
        masks = masks.asnumpy()
    if not isinstance(masks, np.ndarray):
        raise TypeError(f"`{name}` must be a Tensor or array (N, 1, H, W), got {type(masks).__name__}.")
    if masks.dtype != np.bool_ and not is_real(masks.dtype):
        raise TypeError(f"`{name}` must hold bools or real numbers, got dtype {masks.dtype}.")
    if masks.shape != (num_samples, 1) + tuple(size):
        raise ValueError(f"`{name}` must have shape ({num_samples}, 1, {size[0]}, {size[1]}), got {masks.shape}.")
    if masks.dtype != np.bool_ and not np.all(np.isfinite(masks)):
        raise ValueError(f"`{name}` must be finite (no NaN or inf): a pixel is inside where it is non-zero.")
    return masks[:, 0] != 0


def check_choice(value, name, choices):
    """Return `value` if it is one of the strings `choices`."""
    if not isinstance(value, str):
        raise TypeError(f"`{name}` must be a str, one of {list(choices)}, got {type(value).__name__}.")
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}.")
    return value


def check_nonnegative(value, name):
    """Return `value` as a float if it is a finite real number >= 0."""
    value = check_real(value, name)
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0, got {value}.")
    return value


def check_fractions(fractions, name="fractions"):
    """Return a sequence of reals in (0, 1) as a float64 array."""
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__len__") or not len(fractions):
        raise TypeError(f"`{name}` must be a non-empty sequence of floats in (0, 1), got {fractions!r}.")
    values = [check_real(f, name) for f in fractions]
    if not all(0 < v < 1 for v in values):
        raise ValueError(f"`{name}` must lie in (0, 1), got {values}.")
    return np.asarray(values, np.float64)


def check_num_classes(net_fn, inputs, expected, name="network"):
    """Raise ValueError unless `net_fn` maps `inputs`-shaped samples to (N, expected) outputs.

    Uses the same cached one-sample forward as `check_call` (`profile`).
    """
    width = check_output_width(profile(net_fn, inputs).output_shape, name)
    if width != expected:
        raise ValueError(f"`{name}` outputs {width} classes, but `num_labels` is {expected}.")
    return width


def check_ood_params(params, keys):
    """Return `params` if it is a dict of float Tensors holding every name in `keys`, with `head`
    (L, F) and `dense_w` (1, F) as `xaifn.ood` expects."""
    if not isinstance(params, dict):
        raise TypeError(f"`params` must be a dict of Tensors from xaifn.ood.init, got {type(params).__name__}.")
    missing = [k for k in keys if k not in params]
    if missing:
        raise ValueError(f"`params` lacks the key(s) {missing}; xaifn.ood.init returns all of {list(keys)}.")
    for key in keys:
        if not isinstance(params[key], ms.Tensor):
            raise TypeError(f"`params[{key!r}]` must be a mindspore.Tensor, got {type(params[key]).__name__}.")
    head, dense = params["head"], params["dense_w"]
    if head.ndim != 2 or tuple(dense.shape) != (1, head.shape[1]):
        raise ValueError(f"`params` must hold head (L, F) and dense_w (1, F), got shapes "
                         f"{tuple(head.shape)} and {tuple(dense.shape)}.")
    return params


def check_bool(value, name):
    """Return `value` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"`{name}` must be a bool, got {type(value).__name__}.")
    return value


def _float_array(value, name, expected):
    if isinstance(value, ms.Tensor):
        value = value.asnumpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"`{name}` must be {expected}, got {type(value).__name__}.")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"`{name}` must hold floats, got dtype {value.dtype}.")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"`{name}` must be finite (no NaN or infinity).")
    return value


def check_baselines(baselines, inputs):
    """Baselines as an (N, C, H, W) Tensor of the inputs' dtype: from a number, or a float Tensor
    or array broadcastable to the inputs ((C, H, W), (1, C, H, W), one per sample (N, C, H, W))."""
    expected = "a number or a float Tensor/array broadcastable to the inputs"
    if isinstance(baselines, numbers.Real) and not isinstance(baselines, bool):
        value = np.array(check_real(baselines, "baselines"))
    else:
        value = _float_array(baselines, "baselines", expected)
    shape = tuple(inputs.shape)
    try:
        broadcast = np.broadcast_shapes(value.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(f"`baselines` must be broadcastable to the inputs' shape {shape}, "
                         f"got shape {value.shape}.")
    return ms.Tensor(np.broadcast_to(value, shape).copy(), inputs.dtype)


def check_noise(noise, sample_shape):
    """Return noise samples (S, C, H, W) matching one input sample (C, H, W): a float Tensor or
    array, or a lazy sample set (anything with `_render` and `shape`, e.g. `GaussianNoise`)."""
    expected = (None,) + tuple(sample_shape)
    if hasattr(noise, "_render") and hasattr(noise, "shape"):
        if tuple(noise.shape[1:]) != expected[1:]:
            raise ValueError(f"`noise` must have shape (S, {', '.join(map(str, sample_shape))}), "
                             f"got {tuple(noise.shape)}.")
        return noise
    noise = _float_array(noise, "noise", "a float Tensor/array (S, C, H, W) or a GaussianNoise")
    if noise.ndim != 4 or noise.shape[1:] != expected[1:] or not noise.shape[0]:
        raise ValueError(f"`noise` must have shape (S, {', '.join(map(str, sample_shape))}) with "
                         f"S >= 1, got {noise.shape}.")
    return noise.astype(np.float32)


def check_sample_targets(targets, num_samples):
    """Targets of a method called through a function: one row per sample, as an int32 array.

    An int or 0-D value is repeated for every sample; 1-D and (N, l) forms keep their shape. The
    labels' range is the explained method's to check.
    """
    shapes = "an int, or an integer Tensor/array/list with one entry per sample"
    if isinstance(targets, numbers.Integral) and not isinstance(targets, bool):
        return np.full(num_samples, int(targets), np.int32)
    if isinstance(targets, bool):
        raise TypeError(f"`targets` must be {shapes}, got bool.")
    labels = _label_array(targets, shapes)
    if labels.ndim == 0:
        return np.full(num_samples, int(labels), np.int32)
    if labels.ndim > 2 or labels.shape[0] != num_samples:
        raise ValueError(f"`targets` must have one entry per input (length {num_samples}), "
                         f"got shape {labels.shape}.")
    return labels.astype(np.int32)


def check_explained(net_fn, output, name="net_fn"):
    """The callable an explanation evaluates: `net_fn` (callable) followed by the choice `output`
    of one of its outputs (`check_output`), built once per (net_fn, output) (`_cache.selected`)."""
    return _cache.selected(check_callable(net_fn, name), check_output(output))


def check_output(output):
    """Return `output` if it can choose one output of a network: None, an int, a str or a callable."""
    if output is None or callable(output) or isinstance(output, str) or (
            isinstance(output, numbers.Integral) and not isinstance(output, bool)):
        return output
    raise TypeError("`output` must be None, an int index, a str key or a function choosing the output to "
                    f"explain, got {type(output).__name__}.")
