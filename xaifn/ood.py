"""OoDNet as data plus pure functions: the DeConf-C head of Generalized ODIN (Hsu et al., 2020).

Parameters are a plain dict of Tensors over the classifier's penultimate features f (N, F):

    head (L, F)                           cosine scores  s_c = <f, w_c> / ((norm(f) + 1e-4)(norm(w_c) + 1e-4))
    dense_w (1, F), dense_b (1,)          temperature    tau = sigmoid(BN(f @ dense_w.T + dense_b))
    bn_gamma, bn_beta, bn_mean, bn_var    (1,) each: the batch norm over that one unit (eps 1e-5)

Training logits are s / tau (with batch statistics); the evaluation output is s, (N, L), higher
meaning more in-distribution. Nothing is written in place: every function returns new values.

Example:
    >>> import numpy as np, mindspore as ms
    >>> from xaifn import ood
    >>> params = ood.init(seed=0, num_features=8, num_classes=3)
    >>> opt_state = ood.init_opt_state(params)
    >>> feats = ms.Tensor(np.random.default_rng(0).normal(size=(16, 8)), ms.float32)
    >>> labels = ms.Tensor(np.arange(16) % 3, ms.int32)
    >>> params, opt_state, loss = ood.train_step(params, opt_state, feats, labels, lr=0.1)
    >>> ood.scores(params, feats).shape
    (16, 3)
"""

import numpy as np
import mindspore as ms
from mindspore import ops

from xaifn import _cache, _checks

#: Parameters trained by SGD, in the order of the flat compiled step.
TRAINABLE = ("head", "dense_w", "dense_b", "bn_gamma", "bn_beta")
#: Batch-norm running statistics, updated by training but not by gradients.
STATISTICS = ("bn_mean", "bn_var")
#: Parameters exempt from weight decay (MindSpore's default filter skips gamma and beta).
NO_DECAY = ("bn_gamma", "bn_beta")
NORM_EPS, BN_EPS, BN_MOMENTUM = 1e-4, 1e-5, 0.9
_DECAYED = tuple(0.0 if k in NO_DECAY else 1.0 for k in TRAINABLE)


def init(seed, num_features, num_classes):
    """Fresh parameters: He-normal head, uniform(+-1/sqrt(F)) dense, identity batch norm."""
    _checks.check_seed(seed)
    num_features = _checks.check_positive_int(num_features, "num_features")
    num_classes = _checks.check_positive_int(num_classes, "num_classes")
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(num_features)
    arrays = {
        "head": rng.normal(0, np.sqrt(2 / num_features), (num_classes, num_features)),
        "dense_w": rng.uniform(-bound, bound, (1, num_features)),
        "dense_b": np.zeros(1), "bn_gamma": np.ones(1), "bn_beta": np.zeros(1),
        "bn_mean": np.zeros(1), "bn_var": np.ones(1),
    }
    return {k: ms.Tensor(v, ms.float32) for k, v in arrays.items()}


def init_opt_state(params):
    """SGD-momentum state: a zero velocity for each trainable parameter."""
    _checks.check_ood_params(params, TRAINABLE + STATISTICS)
    return {k: ops.zeros_like(params[k]) for k in TRAINABLE}


def scores(params, features):
    """Cosine scores s (N, L): the in-distribution score of each class. Traceable."""
    head = params["head"]
    dots = ops.matmul(features, head.T)
    f_norm = ops.norm(features, dim=1, keepdim=True) + NORM_EPS
    w_norm = ops.norm(head, dim=1).reshape(1, -1) + NORM_EPS
    return dots / (f_norm * w_norm)


def logits(params, features):
    """Training logits s / tau with batch statistics, and the updated (bn_mean, bn_var). Traceable."""
    g = ops.matmul(features, params["dense_w"].T) + params["dense_b"]            # (N, 1)
    mean = g.mean(axis=0)
    var = ((g - mean) ** 2).mean(axis=0)
    normed = (g - mean) / ops.sqrt(var + BN_EPS) * params["bn_gamma"] + params["bn_beta"]
    tau = ops.sigmoid(normed)
    n = g.shape[0]
    new_mean = BN_MOMENTUM * params["bn_mean"] + (1 - BN_MOMENTUM) * mean
    new_var = BN_MOMENTUM * params["bn_var"] + (1 - BN_MOMENTUM) * var * n / max(n - 1, 1)
    return scores(params, features) / tau, new_mean, new_var


def cross_entropy(logit_values, soft_labels):
    """mean_n -sum_c y_nc log softmax(logits)_nc. Traceable."""
    return -(soft_labels * ops.log_softmax(logit_values, axis=1)).sum(axis=1).mean()


def _flat_loss(head, dense_w, dense_b, bn_gamma, bn_beta, bn_mean, bn_var, features, soft_labels):
    params = {"head": head, "dense_w": dense_w, "dense_b": dense_b, "bn_gamma": bn_gamma,
              "bn_beta": bn_beta, "bn_mean": bn_mean, "bn_var": bn_var}
    values, new_mean, new_var = logits(params, features)
    return cross_entropy(values, soft_labels), (new_mean, new_var)


_loss_and_grads = ms.value_and_grad(_flat_loss, grad_position=(0, 1, 2, 3, 4), has_aux=True)


@ms.jit
def _compiled_step(features, soft_labels, hyper, head, dense_w, dense_b, bn_gamma, bn_beta,
                   bn_mean, bn_var, v_head, v_dense_w, v_dense_b, v_bn_gamma, v_bn_beta):
    # flat Tensor arguments: gradients with respect to tuple or dict arguments come back empty
    lr, momentum, weight_decay = hyper[0], hyper[1], hyper[2]
    trainable = (head, dense_w, dense_b, bn_gamma, bn_beta)
    velocity = (v_head, v_dense_w, v_dense_b, v_bn_gamma, v_bn_beta)
    (loss, (new_mean, new_var)), grads = _loss_and_grads(head, dense_w, dense_b, bn_gamma, bn_beta,
                                                         bn_mean, bn_var, features, soft_labels)
    new_params, new_velocity = (), ()
    for p, g, v, decayed in zip(trainable, grads, velocity, _DECAYED):
        v = momentum * v + g + decayed * weight_decay * p
        new_velocity += (v,)
        new_params += (p - lr * v,)
    return loss, new_params, (new_mean, new_var), new_velocity


def soft_labels(labels, num_classes):
    """Class indices (N,) or one-hot/soft labels (N, L) as a float32 (N, L) Tensor (validated)."""
    array = labels.asnumpy() if isinstance(labels, ms.Tensor) else np.asarray(labels)
    if array.ndim == 2:
        if array.shape[1] != num_classes:
            raise ValueError(f"`labels` given as one-hot must have {num_classes} columns, "
                             f"got shape {array.shape}.")
        return ms.Tensor(array, ms.float32)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise TypeError("`labels` must be class indices (N,) of an integer dtype or one-hot (N, L), "
                        f"got shape {array.shape} and dtype {array.dtype}.")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"`labels` must lie in [0, {num_classes}), got {array.min()}..{array.max()}.")
    return ms.Tensor(np.eye(num_classes, dtype=np.float32)[array])


@_cache.serialised
def train_step(params, opt_state, features, labels, lr, momentum=0.9, weight_decay=1e-4):
    """One compiled SGD step with momentum and weight decay; returns (params, opt_state, loss).

    `labels` are class indices (N,) or one-hot (N, L). The update is MindSpore's Momentum:
    g += weight_decay * p (not for bn_gamma/bn_beta); v = momentum * v + g; p -= lr * v.
    The batch-norm running statistics are updated from the batch.
    """
    _checks.check_ood_params(params, TRAINABLE + STATISTICS)
    if not isinstance(opt_state, dict) or any(k not in opt_state for k in TRAINABLE):
        raise ValueError(f"`opt_state` must be a dict with the keys {list(TRAINABLE)} (from init_opt_state).")
    features = _checks.check_features(features, params["head"].shape[1])
    targets = soft_labels(labels, params["head"].shape[0])
    if targets.shape[0] != features.shape[0]:
        raise ValueError(f"`labels` must have one row per feature row ({features.shape[0]}), "
                         f"got {targets.shape[0]}.")
    hyper = ms.Tensor([_checks.check_real(v, n) for v, n in
                       ((lr, "lr"), (momentum, "momentum"), (weight_decay, "weight_decay"))], ms.float32)
    loss, new_params, new_stats, new_velocity = _compiled_step(
        features, targets, hyper, *(params[k] for k in TRAINABLE + STATISTICS),
        *(opt_state[k] for k in TRAINABLE))
    params = dict(zip(TRAINABLE + STATISTICS, new_params + new_stats))
    return params, dict(zip(TRAINABLE, new_velocity)), loss


def learning_rate(epoch, lr=0.1, decay=0.1, decay_every=30):
    """The original's step schedule: lr * decay ** (epoch // decay_every)."""
    return lr * decay ** (epoch // decay_every)


def _batches(data):
    """One epoch of (inputs, labels) pairs from a re-iterable or a mindspore.dataset."""
    rows = data.create_tuple_iterator(num_epochs=1) if hasattr(data, "create_tuple_iterator") else iter(data)
    for index, row in enumerate(rows):
        if not isinstance(row, (tuple, list)) or len(row) != 2:
            kind = f"{len(row)} items" if isinstance(row, (tuple, list)) else type(row).__name__
            raise ValueError(f"`data` batch {index} must be a pair (inputs, labels), got {kind}.")
        yield row[0], row[1]


@_cache.serialised
def fit(params, data, features_fn=None, epochs=90, lr=0.1, momentum=0.9, weight_decay=1e-4,
        decay=0.1, decay_every=30, opt_state=None, progress=None):
    """Train the head on `data` with the original's schedule; returns (params, opt_state, losses).

    Args:
        params: from `init` (or an earlier `fit`).
        data: a re-iterable of (inputs, labels) batches, or a `mindspore.dataset` yielding them;
            labels are class indices or one-hot.
        features_fn: inputs -> (N, F) features, e.g. a classifier's penultimate layer; None if
            the data are features already. It is compiled once with `ms.jit`.
        epochs, lr, momentum, weight_decay, decay, decay_every: SGD schedule (defaults: original).
        opt_state: momentum state to resume from (default: zeros).
        progress: optional callable(epoch, mean_loss) called after each epoch.

    Returns:
        (params, opt_state, losses) with losses the mean loss of each epoch (a list of floats).
    """
    epochs = _checks.check_positive_int(epochs, "epochs")
    decay_every = _checks.check_positive_int(decay_every, "decay_every")
    _checks.check_ood_params(params, TRAINABLE + STATISTICS)
    if features_fn is not None:
        _checks.check_callable(features_fn, "features_fn")
        features_fn = _cache.cached(features_fn, ("features",), lambda: _cache.compiled(features_fn, checked=False))
    opt_state = init_opt_state(params) if opt_state is None else opt_state
    losses = []
    for epoch in range(epochs):
        rate, total, count = learning_rate(epoch, lr, decay, decay_every), 0.0, 0
        for inputs, labels in _batches(data):
            inputs = inputs if isinstance(inputs, ms.Tensor) else ms.Tensor(np.asarray(inputs), ms.float32)
            features = inputs if features_fn is None else features_fn(inputs)
            where = f"`data` batch {count} (epoch {epoch})"
            try:  # train_step refuses non-finite features, bad labels: say which batch
                params, opt_state, loss = train_step(params, opt_state, features, labels, rate,
                                                     momentum, weight_decay)
            except (TypeError, ValueError) as error:
                raise type(error)(f"{where}: {error}") from None
            if not np.isfinite(float(loss)):
                raise FloatingPointError(f"{where}: the loss is {float(loss)}; lower `lr` or check the data.")
            total, count = total + float(loss), count + 1
        if count == 0:
            raise ValueError("`data` yielded no batch.")
        losses.append(total / count)
        if progress is not None:
            progress(epoch, losses[-1])
    return params, opt_state, losses


@_cache.serialised
def save(params, path):
    """Save params to a MindSpore checkpoint (`.ckpt`)."""
    ms.save_checkpoint([{"name": k, "data": v} for k, v in params.items()], str(path))


@_cache.serialised
def load(path):
    """Load params saved by `save`: a dict of Tensors."""
    return {k: ms.Tensor(v.asnumpy()) for k, v in ms.load_checkpoint(str(path)).items()}


def inlier_fn(params, features_fn):
    """images -> (N, L) in-distribution scores: `scores(params, features_fn(images))`, for RISEPlus.

    Two inlier functions made from the same `features_fn` and the same parameter Tensors are equal
    for xaifn's compile cache: RISEPlus compiles once for both.
    """
    _checks.check_ood_params(params, ("head",) + TRAINABLE[1:2])
    _checks.check_callable(features_fn, "features_fn")

    def inlier(images):
        return scores(params, features_fn(images))
    def key():  # the same objects, and their storage now (a checkpoint loaded into them moves it)
        return ("ood.inlier_fn", _cache.callable_key(features_fn),
                tuple((k, _cache.Same(v), v.data_ptr()) for k, v in sorted(params.items())))
    inlier.xaifn_key = key
    return inlier
