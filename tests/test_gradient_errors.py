"""Bad arguments to the gradient family and GradCAM: a TypeError or ValueError naming the argument,
raised before any gradient is computed (`mindspore.grad` is replaced by a bomb in these tests)."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

import xaifn
from xaifn import explanation
from xaifn.models import LeNet5

METHODS = ("gradient", "deconvolution", "guided_backprop", "gradcam")
APIS = ("functional", "class")


@pytest.fixture
def no_gradients(monkeypatch):
    """Any gradient computation fails loudly, so the errors below must come from the checks."""
    def bomb(*args, **kwargs):
        raise AssertionError("a gradient was computed before the arguments were checked")
    monkeypatch.setattr(ms, "grad", bomb)


@pytest.fixture(scope="module")
def net(zoo):
    return zoo.GlobalNet(channels=3, num_class=5)


@pytest.fixture(scope="module")
def lenet():
    return LeNet5(10, num_channel=3)


GOOD_INPUTS = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)

BAD_INPUTS = {
    "numpy": (GOOD_INPUTS, TypeError),
    "list": (GOOD_INPUTS.tolist(), TypeError),
    "none": (None, TypeError),
    "3d": (ms.Tensor(GOOD_INPUTS[0]), ValueError),
    "5d": (ms.Tensor(GOOD_INPUTS[None]), ValueError),
    "int32": (ms.Tensor(GOOD_INPUTS.astype(np.int32)), TypeError),
    "bool": (ms.Tensor(GOOD_INPUTS > 0), TypeError),
    "empty": (ms.Tensor(np.zeros((0, 3, 8, 8), np.float32)), ValueError),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
def test_bad_inputs(zoo, net, no_gradients, method, api, case):
    inputs, error = BAD_INPUTS[case]
    with pytest.raises(error, match="`inputs`"):
        zoo.explainer(method, api, net)(inputs, 1)


BAD_TARGETS = {  # for N = 2 samples and L = 5 classes
    "python_float": (1.0, TypeError),
    "float_tensor": (ms.Tensor([1.0, 2.0], ms.float32), TypeError),
    "float_0d_tensor": (ms.Tensor(1.0, ms.float32), TypeError),
    "float_array": (np.array([1.0, 2.0]), TypeError),
    "bool": (True, TypeError),
    "bool_tensor": (ms.Tensor([True, False]), TypeError),
    "list_with_float": ([1, 2.0], TypeError),
    "list_with_bool": ([1, True], TypeError),
    "str": ("1", TypeError),
    "none": (None, TypeError),
    "too_long_list": ([1, 2, 3], ValueError),
    "too_short_list": ([1], ValueError),
    "empty_list": ([], ValueError),
    "too_long_tensor": (ms.Tensor([1, 2, 3], ms.int32), ValueError),
    "2d_tensor": (ms.Tensor([[1], [2]], ms.int32), ValueError),
    "2d_tensor_wide": (ms.Tensor([[1, 2], [3, 4]], ms.int32), ValueError),
    "3d_tensor": (ms.Tensor(np.ones((2, 1, 1), np.int32)), ValueError),
    "label_eq_L": (5, ValueError),
    "numpy_label_eq_L": (np.int64(5), ValueError),
    "label_gt_L_in_list": ([0, 7], ValueError),
    "label_eq_L_in_tensor": (ms.Tensor([5, 0], ms.int32), ValueError),
    "negative": (-1, ValueError),
    "negative_in_list": ([0, -1], ValueError),
    "negative_0d_tensor": (ms.Tensor(-2, ms.int64), ValueError),
}


@pytest.mark.parametrize("case", list(BAD_TARGETS))
@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
def test_bad_targets(zoo, net, no_gradients, method, api, case):
    targets, error = BAD_TARGETS[case]
    with pytest.raises(error, match="`targets`"):
        zoo.explainer(method, api, net)(ms.Tensor(GOOD_INPUTS), targets)


@pytest.mark.parametrize("method", METHODS)
def test_out_of_range_message_gives_the_range(zoo, net, no_gradients, method):
    with pytest.raises(ValueError, match=r"`targets`.*\[0, 5\)"):
        zoo.explainer(method, "functional", net)(ms.Tensor(GOOD_INPUTS), [1, 5])


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("method", METHODS)
def test_good_arguments_pass_the_checks(zoo, net, method, api):
    """Control for the tests above: the same network and inputs work with a valid target."""
    assert zoo.explainer(method, api, net)(ms.Tensor(GOOD_INPUTS), [4, 0]).shape == (2, 1, 8, 8)


# --------------------------------------------------------------------------------------------
# The network argument.
# --------------------------------------------------------------------------------------------

def plain_function(inputs):
    return inputs.mean(axis=(2, 3))


@pytest.mark.parametrize("bad", [None, 3, "net", np.zeros(3)])
def test_gradient_needs_a_callable(no_gradients, bad):
    with pytest.raises(TypeError, match="`net_fn`"):
        xaifn.gradient(bad, ms.Tensor(GOOD_INPUTS), 1)


@pytest.mark.parametrize("function", [xaifn.deconvolution, xaifn.guided_backprop, xaifn.gradcam])
@pytest.mark.parametrize("bad", [plain_function, None, 3])
def test_rule_methods_and_gradcam_need_a_cell(no_gradients, function, bad):
    with pytest.raises(TypeError, match="`net`"):
        function(bad, ms.Tensor(GOOD_INPUTS), 1)


@pytest.mark.parametrize("cls", [explanation.Gradient, explanation.Deconvolution,
                                 explanation.GuidedBackprop, explanation.GradCAM])
@pytest.mark.parametrize("bad", [plain_function, None, 3, "net"])
def test_class_api_needs_a_cell(cls, bad):
    with pytest.raises(TypeError, match="`network`"):
        cls(bad)


@pytest.mark.parametrize("method", METHODS)
def test_network_must_return_logits(zoo, no_gradients, method):
    net = nn.SequentialCell([nn.Conv2d(3, 4, 3), nn.ReLU()])  # returns (N, 4, 8, 8)
    with pytest.raises(ValueError, match="`net"):
        zoo.explainer(method, "functional", net, layer="")(ms.Tensor(GOOD_INPUTS), 1)


def test_plain_function_must_return_logits(no_gradients):
    with pytest.raises(ValueError, match="`net_fn`"):
        xaifn.gradient(lambda inputs: inputs, ms.Tensor(GOOD_INPUTS), 1)


# --------------------------------------------------------------------------------------------
# GradCAM's layer.
# --------------------------------------------------------------------------------------------

LENET_INPUTS = np.random.default_rng(1).random((1, 3, 32, 32)).astype(np.float32)


def gradcam_call(api, net, layer):
    if api == "class":
        return explanation.GradCAM(net, layer=layer)(ms.Tensor(LENET_INPUTS), 5)
    return xaifn.gradcam(net, ms.Tensor(LENET_INPUTS), 5, layer=layer)


@pytest.mark.parametrize("api", APIS)
def test_unknown_layer_lists_close_names(lenet, no_gradients, api):
    with pytest.raises(ValueError, match="`layer`.*'conv3'") as info:
        gradcam_call(api, lenet, "conv3")
    assert "conv1" in str(info.value) and "conv2" in str(info.value)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("layer", ["fc1", "flatten"])
def test_layer_output_must_be_4d(lenet, no_gradients, api, layer):
    with pytest.raises(ValueError, match=f"`layer`.*'{layer}'.*4-D"):
        gradcam_call(api, lenet, layer)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("layer", ["relu", "max_pool2d"])
def test_layer_called_more_than_once(lenet, no_gradients, api, layer):
    with pytest.raises(ValueError, match=f"`layer`.*'{layer}'.*called"):
        gradcam_call(api, lenet, layer)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("layer", [3, None, ["conv2"], b"conv2"])
def test_layer_must_be_a_string(lenet, no_gradients, api, layer):
    with pytest.raises(TypeError, match="`layer`"):
        gradcam_call(api, lenet, layer)
