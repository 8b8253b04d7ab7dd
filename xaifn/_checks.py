"""Edge checks: turn what a user passed into canonical values, or raise a clear error.

Every public entry point calls these before any computation; nothing below them validates again.
Errors name the argument and say what was expected.
"""
import difflib
import numbers

import numpy as np
import mindspore as ms
from mindspore import nn

from xaifn import _cache, _views

_FLOAT_DTYPES = (ms.float16, ms.float32, ms.float64, ms.bfloat16)


def check_inputs(inputs, name="inputs"):
    """Return `inputs` if it is a float Tensor of shape (N, C, H, W) with N >= 1."""
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


def check_layer_name(network, layer):
    """Return the cell named `layer` in `network` ('' means the input itself: returns None)."""
    if not isinstance(layer, str):
        raise TypeError(f"`layer` must be a str (a name from network.cells_and_names()), "
                        f"got {type(layer).__name__}.")
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


def check_call(net_fn, inputs, targets, allow_2d=False, name="net_fn"):
    """Validate (net_fn, inputs, targets) of an explanation; return canonical (N, l) targets.

    The number of classes L comes from one eager forward pass of a single zero sample, cached
    per (net_fn, sample shape), so that out-of-range labels are refused before any real work.
    """
    check_callable(net_fn, name)
    check_inputs(inputs)
    sample = (tuple(inputs.shape[1:]), inputs.dtype)
    shape = _cache.cached(net_fn, ("output_shape",) + sample,
                          lambda: _views.output_shape(_cache.evaluable(net_fn), *sample))
    num_classes = check_output_width(shape, name)
    return check_targets(targets, inputs.shape[0], num_classes, allow_2d)


def check_perturbation_call(net_fn, activation_fn, inputs, targets, chunk):
    """Validate the arguments every perturbation method shares; return (N, l) labels and chunk."""
    check_callable(activation_fn, "activation_fn")
    labels = check_call(net_fn, inputs, targets, allow_2d=True)
    return labels, check_positive_int(chunk, "chunk")


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
    """Return `value` as a float if it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise TypeError(f"`{name}` must be a finite real number, got {value!r}.")
    return float(value)


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
    if not np.all((masks >= 0) & (masks <= 1)):
        raise ValueError("`masks` must lie in [0, 1] (NaN is not allowed).")
    return masks.astype(np.float32)


def check_window(value, name, image_size):
    """Return a pair of positive ints no larger than the image (H, W)."""
    pair = check_size(value, name)
    if pair[0] > image_size[0] or pair[1] > image_size[1]:
        raise ValueError(f"`{name}` {pair} must not exceed the image size {tuple(image_size)}.")
    return pair


def check_features(features, num_features):
    """Return `features` if it is a float Tensor (N, F) with F == num_features."""
    if not isinstance(features, ms.Tensor):
        raise TypeError(f"`features` must be a mindspore.Tensor (N, F), got {type(features).__name__}.")
    if features.ndim != 2 or features.shape[1] != num_features:
        raise ValueError(f"`features` must have shape (N, {num_features}), got {tuple(features.shape)}.")
    if features.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"`features` must have a floating-point dtype, got {features.dtype}.")
    return features


def check_output(output):
    """Return `output` if it can choose one output of a network: None, an int, a str or a callable."""
    if output is None or callable(output) or isinstance(output, str) or (
            isinstance(output, numbers.Integral) and not isinstance(output, bool)):
        return output
    raise TypeError("`output` must be None, an int index, a str key or a function choosing the output to "
                    f"explain, got {type(output).__name__}.")
