"""Gradient, Deconvolution and Guided Backpropagation: closed forms, float64 references, properties.

The cross-method properties at the end of this file (batching, target forms, execution modes,
determinism, the user's network left untouched, reloaded weights, non-square inputs) run for all
four methods -- GradCAM included -- through both the functional and the class API. GradCAM's own
arithmetic is tested in test_gradcam.py.
"""
import numpy as np
import mindspore as ms
import pytest
from hypothesis import assume, given, settings, strategies as st
from mindspore import nn, ops

import xaifn
from xaifn import explanation
from xaifn.models import LeNet5

SETTINGS = settings(max_examples=5, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
RULES = ("gradient", "deconvolution", "guided_backprop")
METHODS = RULES + ("gradcam",)
APIS = ("functional", "class")
FAMILY = {"gradient": xaifn.gradient, "deconvolution": xaifn.deconvolution,
          "guided_backprop": xaifn.guided_backprop}
CLASSES = {"gradient": explanation.Gradient, "deconvolution": explanation.Deconvolution,
           "guided_backprop": explanation.GuidedBackprop}


def labels_of(n, num_class):
    return st.lists(st.integers(0, num_class - 1), min_size=n, max_size=n)


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def rule_backward(rule, r, z):
    """The rule table of methods.md in float64: gradient passed back through a ReLU."""
    r = np.asarray(r, np.float64)
    if rule == "gradient":
        return r * (z > 0)
    if rule == "deconvolution":
        return np.maximum(r, 0.0)
    if rule == "guided_backprop":
        return np.maximum(r * (z > 0), 0.0)
    raise ValueError(rule)


def channel_max_abs_np(grads):
    return np.abs(grads).max(axis=1, keepdims=True)


def assert_close(got, expected, rtol=1e-5):
    """Relative agreement, with an absolute floor scaled to the expected values' magnitude."""
    expected = np.asarray(expected, np.float64)
    atol = rtol * max(np.abs(expected).max(), 1e-30)
    np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=rtol, atol=atol)


def f64(param):
    return param.asnumpy().astype(np.float64)


# --------------------------------------------------------------------------------------------
# Closed forms: nn.ReLU -> Flatten -> Dense. R = W_t at the ReLU, z = x.
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def relu_dense(zoo):
    nets = {}
    for bias in (False, True):
        net = zoo.ReluDense(shape=(3, 4, 5), num_class=4, bias=bias)
        nets[bias] = zoo.set_params(net, zoo.random_params(net, seed=11))
    return nets


@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
@pytest.mark.parametrize("rule", RULES)
@SETTINGS
@given(seed=SEEDS, targets=labels_of(3, 4))
def test_relu_dense_closed_form(relu_dense, rule, bias, seed, targets):
    net = relu_dense[bias]
    x = normal(seed, (3, 3, 4, 5))  # mixed signs; H != W
    w_t = f64(net.fc.weight)[targets].reshape(x.shape)
    expected = {
        "gradient": np.abs(w_t * (x > 0)),
        "deconvolution": np.abs(np.maximum(w_t, 0)),
        "guided_backprop": np.abs(np.maximum(w_t * (x > 0), 0)),
    }[rule].max(axis=1, keepdims=True)
    got = FAMILY[rule](net, ms.Tensor(x), targets)
    assert got.shape == (3, 1, 4, 5)
    assert got.dtype == ms.float32
    assert_close(got.asnumpy(), expected, rtol=1e-6)


def test_closed_forms_of_the_three_rules_differ(relu_dense):
    """The three maps are distinct on mixed-sign inputs: a swapped rule cannot go unnoticed."""
    x = ms.Tensor(normal(5, (2, 3, 4, 5)))
    maps = [FAMILY[rule](relu_dense[True], x, [0, 3]).asnumpy() for rule in RULES]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not np.allclose(maps[i], maps[j]), (RULES[i], RULES[j])


@SETTINGS
@given(seed=SEEDS, targets=labels_of(2, 3))
def test_gradient_of_a_plain_function(seed, targets):
    """`gradient` accepts any callable: f(x) = (x*x).flatten() @ V^T has gradient 2 x V_t."""
    v = normal(1, (3, 2 * 3 * 5))
    v_transposed = ms.Tensor(v.T.copy())

    def net_fn(inputs):
        flat = inputs.reshape(inputs.shape[0], -1)
        return ops.matmul(flat * flat, v_transposed)

    x = normal(seed, (2, 2, 3, 5))
    expected = channel_max_abs_np(2 * x.astype(np.float64) * v[targets].reshape(x.shape))
    assert_close(xaifn.gradient(net_fn, ms.Tensor(x), targets).asnumpy(), expected)


# --------------------------------------------------------------------------------------------
# The rule table itself: Dense -> nn.ReLU -> Dense, where R and z both take both signs.
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dense_relu_dense(zoo):
    net = zoo.DenseReluDense(shape=(2, 3, 3), hidden=16, num_class=4)
    zoo.set_params(net, zoo.random_params(net, seed=21))
    return net, {rule: xaifn.rule_view(net, rule) for rule in RULES}


@pytest.mark.parametrize("rule", RULES)
@SETTINGS
@given(seed=SEEDS, targets=labels_of(3, 4))
def test_relu_rule_table(dense_relu_dense, rule, seed, targets):
    net, views = dense_relu_dense
    x = normal(seed, (3, 2, 3, 3))
    w1, b1, w2 = f64(net.fc1.weight), f64(net.fc1.bias), f64(net.fc2.weight)
    z = x.reshape(3, -1).astype(np.float64) @ w1.T + b1  # the ReLU's forward input
    r = w2[targets]                                       # the gradient arriving at its output
    for r_sign in (r > 0, r < 0):                         # all four sign cases occur
        for z_sign in (z > 0, z < 0):
            assume((r_sign & z_sign).any())
    expected = {name: (rule_backward(name, r, z) @ w1).reshape(x.shape) for name in RULES}

    got = xaifn.input_gradient(views[rule], ms.Tensor(x), ms.Tensor(targets, ms.int32)).asnumpy()
    assert got.shape == x.shape
    assert_close(got, expected[rule])
    for other in RULES:
        if other != rule:
            assert not np.allclose(got, expected[other], rtol=1e-3, atol=1e-6), other
    # and the public entry point is the channel-max of the same table
    assert_close(FAMILY[rule](net, ms.Tensor(x), targets).asnumpy(), channel_max_abs_np(expected[rule]))


def test_rule_view_rejects_unknown_rule(zoo):
    with pytest.raises(ValueError, match="`rule`"):
        xaifn.rule_view(zoo.ReluDense(), "lrp")


# --------------------------------------------------------------------------------------------
# A float64 numpy conv net: Conv2d 3x3 'valid' + bias -> nn.ReLU -> Flatten -> Dense.
# --------------------------------------------------------------------------------------------

def conv_valid_np(x, w, b):
    n, _, h, wd = x.shape
    k, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    out = np.zeros((n, k, oh, ow)) + b[None, :, None, None]
    for u in range(kh):
        for v in range(kw):
            out += np.einsum("nchw,kc->nkhw", x[:, :, u:u + oh, v:v + ow], w[:, :, u, v])
    return out


def conv_valid_input_grad_np(dz, w, in_hw):
    n, _, oh, ow = dz.shape
    _, c, kh, kw = w.shape
    dx = np.zeros((n, c) + tuple(in_hw))
    for u in range(kh):
        for v in range(kw):
            dx[:, :, u:u + oh, v:v + ow] += np.einsum("nkhw,kc->nchw", dz, w[:, :, u, v])
    return dx


def conv_dense_np(params, x):
    wc, bc, wd, bd = params
    z = conv_valid_np(x, wc, bc)
    return np.maximum(z, 0).reshape(len(x), -1) @ wd.T + bd


def conv_dense_input_grad_np(params, x, targets, rule):
    wc, bc, wd, _ = params
    z = conv_valid_np(x, wc, bc)
    dz = rule_backward(rule, wd[targets].reshape(z.shape), z)
    return conv_valid_input_grad_np(dz, wc, x.shape[2:])


@pytest.fixture(scope="module")
def conv_dense(zoo):
    net = zoo.ConvDense(channels=2, kernels=3, size=(8, 10), num_class=4)
    zoo.set_params(net, zoo.random_params(net, seed=31))
    params = (f64(net.conv.weight), f64(net.conv.bias), f64(net.fc.weight), f64(net.fc.bias))
    return net, params


def test_numpy_conv_reference_is_right(conv_dense):
    """Test of the test: the numpy forward matches the network, its gradient matches finite differences."""
    net, params = conv_dense
    x = normal(3, (2, 2, 8, 10)).astype(np.float64)
    assert_close(net(ms.Tensor(x.astype(np.float32))).asnumpy(), conv_dense_np(params, x), rtol=1e-5)
    targets = [1, 3]
    grad = conv_dense_input_grad_np(params, x, targets, "gradient")
    eps, rng = 1e-6, np.random.default_rng(0)
    for _ in range(12):
        index = tuple(int(rng.integers(0, d)) for d in x.shape)
        step = np.zeros_like(x)
        step[index] = eps
        up, down = conv_dense_np(params, x + step), conv_dense_np(params, x - step)
        numeric = sum(up[n, t] - down[n, t] for n, t in enumerate(targets)) / (2 * eps)
        assert abs(numeric - grad[index]) <= 1e-6 * max(1.0, abs(grad[index]))


@pytest.mark.parametrize("rule", RULES)
@SETTINGS
@given(seed=SEEDS, targets=labels_of(2, 4))
def test_conv_net_matches_float64_reference(conv_dense, rule, seed, targets):
    net, params = conv_dense
    x = normal(seed, (2, 2, 8, 10))
    expected = conv_dense_input_grad_np(params, x.astype(np.float64), targets, rule)
    view = net if rule == "gradient" else xaifn.rule_view(net, rule)
    raw = xaifn.input_gradient(view, ms.Tensor(x), ms.Tensor(targets, ms.int32)).asnumpy()
    assert_close(raw, expected)
    reduced = xaifn.channel_max_abs(ms.Tensor(raw)).asnumpy()
    assert_close(reduced, channel_max_abs_np(expected))
    assert_close(FAMILY[rule](net, ms.Tensor(x), targets).asnumpy(), channel_max_abs_np(expected))
    assert_close(CLASSES[rule](net)(ms.Tensor(x), ms.Tensor(targets, ms.int32)).asnumpy(),
                 channel_max_abs_np(expected))


# --------------------------------------------------------------------------------------------
# Traceable core inside a user's Cell (PYNATIVE and GRAPH_MODE).
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def global_values(zoo):
    """Parameter values of the small conv net shared by the tests below."""
    return zoo.random_params(zoo.GlobalNet(), seed=61)


@pytest.fixture(scope="module")
def global_net(zoo, global_values):
    return zoo.twin(zoo.GlobalNet, global_values)


class ExplainedNet(nn.Cell):
    """Returns the logits and a saliency map of the given rule, from one construct."""

    def __init__(self, net, rule):
        super().__init__()
        self.net = net
        self.view = xaifn.rule_view(net, rule)

    def construct(self, x, t):
        return self.net(x), xaifn.saliency(self.view, x, t)


@pytest.mark.parametrize("mode", ["pynative", "graph"])
@pytest.mark.parametrize("rule", RULES)
def test_saliency_inside_a_cell(zoo, global_net, global_values, rule, mode):
    x = ms.Tensor(normal(42, (2, 3, 8, 8)))
    t = ms.Tensor([1, 4], ms.int32)
    logits_expected = global_net(x).asnumpy()
    expected = FAMILY[rule](global_net, x, t).asnumpy()
    cell = ExplainedNet(zoo.twin(zoo.GlobalNet, global_values), rule)  # a copy: wrapping renames Parameters
    if mode == "graph":
        with zoo.graph_mode():
            logits, smap = cell(x, t)
    else:
        logits, smap = cell(x, t)
    assert smap.shape == (2, 1, 8, 8)
    assert_close(logits.asnumpy(), logits_expected, rtol=1e-6)
    assert_close(smap.asnumpy(), expected, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# Class API: the spec's examples; networks in train mode with BatchNorm; no nn.ReLU cell.
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lenet():
    net = LeNet5(10, num_channel=3)
    return net


@pytest.mark.parametrize("rule", RULES)
def test_spec_example(lenet, rule):
    inputs = ms.Tensor(np.random.default_rng(0).random((1, 3, 32, 32)), ms.float32)
    explainer = CLASSES[rule](lenet)
    assert explainer.network is lenet
    saliency = explainer(inputs, 5)
    assert saliency.shape == (1, 1, 32, 32)
    view = lenet if rule == "gradient" else xaifn.rule_view(lenet, rule)
    eager = xaifn.saliency(view, inputs, ms.Tensor([5], ms.int32)).asnumpy()
    assert eager.max() > 0
    assert_close(saliency.asnumpy(), eager, rtol=1e-5)
    np.testing.assert_array_equal(saliency.asnumpy(), FAMILY[rule](lenet, inputs, 5).asnumpy())


@pytest.mark.parametrize("method", METHODS)
def test_batchnorm_network_is_explained_in_eval_mode(zoo, method):
    values = zoo.random_params(zoo.SeqBNNet(), seed=51, scale=1.0)  # moving stats far from batch stats
    x = ms.Tensor(normal(52, (3, 3, 8, 8)))
    targets = [0, 2, 4]
    net = zoo.twin(zoo.SeqBNNet, values).set_train(True)
    got = zoo.explainer(method, "class", net, layer="features.3")(x, targets).asnumpy()
    assert all(cell.training for _, cell in net.cells_and_names())
    reference = zoo.twin(zoo.SeqBNNet, values).set_train(False)
    expected = zoo.explainer(method, "class", reference, layer="features.3")(x, targets).asnumpy()
    assert_close(got, expected, rtol=1e-6)
    net.set_train(False)
    again = zoo.explainer(method, "class", net, layer="features.3")(x, targets).asnumpy()
    np.testing.assert_array_equal(again, got)
    if method == "gradient":  # the test can tell: batch statistics give another map
        batch_stats = zoo.twin(zoo.SeqBNNet, values).set_train(True)
        train_map = xaifn.saliency(batch_stats, x, ms.Tensor(targets, ms.int32)).asnumpy()
        assert not np.allclose(train_map, got, rtol=1e-3)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("rule", ["deconvolution", "guided_backprop"])
def test_modified_rules_need_a_relu_cell(zoo, rule, api):
    net = zoo.FunctionalReluNet()
    x = ms.Tensor(normal(0, (1, 3, 8, 8)))
    with pytest.raises(ValueError, match="nn.ReLU"):
        zoo.explainer(rule, api, net)(x, 1)
    # Gradient has no rule to apply, so it works on the same network
    assert zoo.explainer("gradient", api, net)(x, 1).shape == (1, 1, 8, 8)


# --------------------------------------------------------------------------------------------
# Properties of all four methods (functional and class API) on a small conv net.
# --------------------------------------------------------------------------------------------

def eager_reference(method, net, x, targets):
    """The map computed step by step in PYNATIVE, without ms.jit, from the traceable blocks."""
    labels = ms.Tensor(np.asarray(targets, np.int32))
    if method == "gradcam":
        n, _, h, w = x.shape
        probed = xaifn.layer_probe_view(net, "conv2", (n, 6, h // 2, w // 2))
        activation, grads = xaifn.layer_activation_gradient(probed, x, labels)
        return xaifn.gradcam_map(activation, grads, (h, w)).asnumpy()
    view = net if method == "gradient" else xaifn.rule_view(net, method)
    return xaifn.saliency(view, x, labels).asnumpy()


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(seed=SEEDS, targets=labels_of(3, 5))
def test_batch_equals_per_sample(zoo, global_net, method, api, seed, targets):
    explain = zoo.explainer(method, api, global_net)
    x = normal(seed, (3, 3, 8, 8))
    whole = explain(ms.Tensor(x), targets).asnumpy()
    assert whole.shape == (3, 1, 8, 8)
    parts = np.concatenate([explain(ms.Tensor(x[i:i + 1]), targets[i]).asnumpy() for i in range(3)])
    assert_close(whole, parts)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(seed=SEEDS, label=st.integers(0, 4), targets=labels_of(3, 5))
def test_target_forms_agree(zoo, global_net, method, api, seed, label, targets):
    explain = zoo.explainer(method, api, global_net)
    x = ms.Tensor(normal(seed, (3, 3, 8, 8)))
    same = [label, ms.Tensor(label, ms.int32), ms.Tensor(label, ms.int64), ms.Tensor([label] * 3, ms.int32),
            ms.Tensor([label] * 3, ms.int64), [label] * 3, (label,) * 3, np.full(3, label, np.int64)]
    first = explain(x, same[0]).asnumpy()
    for form in same[1:]:
        np.testing.assert_array_equal(explain(x, form).asnumpy(), first)
    per_sample = [targets, tuple(targets), ms.Tensor(targets, ms.int32), np.asarray(targets, np.int32)]
    first = explain(x, per_sample[0]).asnumpy()
    for form in per_sample[1:]:
        np.testing.assert_array_equal(explain(x, form).asnumpy(), first)


@pytest.fixture(scope="module")
def graph_twin(zoo, global_values):
    """A second copy of global_net, explained for the first time (so compiled) in GRAPH_MODE."""
    return zoo.twin(zoo.GlobalNet, global_values)


@pytest.mark.parametrize("method", METHODS)
@SETTINGS
@given(seed=SEEDS, targets=labels_of(2, 5))
def test_pynative_jit_and_graph_mode_agree(zoo, global_net, graph_twin, method, seed, targets):
    x = ms.Tensor(normal(seed, (2, 3, 8, 8)))
    eager = eager_reference(method, global_net, x, targets)
    jitted = zoo.explainer(method, "functional", global_net)(x, targets).asnumpy()
    with zoo.graph_mode():
        graph_same_net = zoo.explainer(method, "functional", global_net)(x, targets).asnumpy()
        graph_fresh = zoo.explainer(method, "functional", graph_twin)(x, targets).asnumpy()
        graph_class = zoo.explainer(method, "class", graph_twin)(x, targets).asnumpy()
    assert ms.get_context("mode") == ms.PYNATIVE_MODE
    for got in (jitted, graph_same_net, graph_fresh, graph_class):
        assert_close(got, eager, rtol=1e-6)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
def test_repeated_calls_are_bit_identical(zoo, global_net, method, api):
    explain = zoo.explainer(method, api, global_net)
    x = ms.Tensor(normal(71, (2, 3, 8, 8)))
    first = explain(x, [3, 1]).asnumpy()
    np.testing.assert_array_equal(explain(x, [3, 1]).asnumpy(), first)
    for other in METHODS:  # other methods on the same network leave this one's result alone
        zoo.explainer(other, api, global_net)(x, [3, 1])
    np.testing.assert_array_equal(explain(x, [3, 1]).asnumpy(), first)


def snapshot(net):
    return {
        "params": [(p.name, id(p), p.requires_grad, p.asnumpy().copy()) for p in net.get_parameters()],
        "cells": [(name, id(cell), type(cell), cell.training, cell.requires_grad)
                  for name, cell in net.cells_and_names()],
        "sequence": [(id(cell), type(cell)) for cell in net.features.cell_list],
    }


def assert_same_snapshot(before, after):
    assert [p[:3] for p in after["params"]] == [p[:3] for p in before["params"]]
    for (name, _, _, old), (_, _, _, new) in zip(before["params"], after["params"]):
        np.testing.assert_array_equal(new, old, err_msg=name)
    assert after["cells"] == before["cells"]
    assert after["sequence"] == before["sequence"]


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
def test_network_is_untouched(zoo, method, api):
    values = zoo.random_params(zoo.SeqBNNet(), seed=81, scale=1.0)
    net = zoo.twin(zoo.SeqBNNet, values).set_train(True)
    net.set_grad(True)
    net.fc.weight.requires_grad = False  # an unusual flag must survive too
    before = snapshot(net)
    x = ms.Tensor(normal(82, (2, 3, 8, 8)))
    zoo.explainer(method, api, net, layer="features.3")(x, [1, 2])
    after = snapshot(net)
    assert_same_snapshot(before, after)
    assert net.training and net.requires_grad
    assert type(net.features[2]) is nn.ReLU and type(net.features[4]) is nn.ReLU
    assert not net.fc.weight.requires_grad


def _load_param_into_net(net, values):
    ms.load_param_into_net(net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in values.items()})


def _set_data(net, values):  # by position: `values` follows net.get_parameters()' order
    for p, value in zip(net.get_parameters(), values.values()):
        p.set_data(ms.Tensor(value))


def _assign(net, values):
    for p, value in zip(net.get_parameters(), values.values()):
        ops.assign(p, ms.Tensor(value))


UPDATES = {"load_param_into_net": _load_param_into_net, "set_data": _set_data, "assign": _assign}


@pytest.mark.parametrize("method,update", [(m, "load_param_into_net") for m in METHODS]
                         + [("gradient", "set_data"), ("gradient", "assign")])
def test_new_weights_are_used(zoo, method, update):
    old = zoo.random_params(zoo.GlobalNet(), seed=91)
    new = zoo.random_params(zoo.GlobalNet(), seed=92)
    x = ms.Tensor(normal(93, (2, 3, 8, 8)))
    net = zoo.twin(zoo.GlobalNet, old)
    explain_class = zoo.explainer(method, "class", net)
    before = explain_class(x, [0, 3]).asnumpy()
    UPDATES[update](net, new)
    after_class = explain_class(x, [0, 3]).asnumpy()
    after_functional = zoo.explainer(method, "functional", net)(x, [0, 3]).asnumpy()
    fresh = zoo.explainer(method, "functional", zoo.twin(zoo.GlobalNet, new))(x, [0, 3]).asnumpy()
    assert not np.allclose(before, fresh)
    assert_close(after_class, fresh, rtol=1e-6)
    assert_close(after_functional, fresh, rtol=1e-6)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
def test_non_square_inputs_keep_height_and_width(zoo, global_net, method, api):
    x = ms.Tensor(normal(101, (2, 3, 8, 14)))
    got = zoo.explainer(method, api, global_net)(x, [2, 0]).asnumpy()
    assert got.shape == (2, 1, 8, 14)
    assert_close(got, eager_reference(method, global_net, x, [2, 0]), rtol=1e-6)
