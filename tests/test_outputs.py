"""`output=`: which output of a network returning several is explained, in one place for every method."""
import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

import xaifn
from xaifn import _cache, explanation


class TwoHeads(nn.Cell):
    """Returns (logits, aux_logits) or a dict of them; `Single` below returns one of them."""

    def __init__(self, kind="tuple"):
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same", has_bias=True)
        self.relu = nn.ReLU()
        self.fc = nn.Dense(4, 3)
        self.aux = nn.Dense(4, 5)

    def construct(self, x):
        h = self.relu(self.conv(x)).mean(axis=(2, 3))
        if self.kind == "dict":
            return {"logits": self.fc(h), "aux": self.aux(h)}
        return self.fc(h), self.aux(h)


class Single(nn.Cell):
    def __init__(self, heads, which):
        super().__init__(auto_prefix=False)
        self.heads = heads
        self.which = which

    def construct(self, x):
        return self.heads(x)[self.which]


def pick_aux(outputs):
    return outputs[1]


def _calls(net, x, output, layer="conv"):
    masks = xaifn.rise_masks(seed=0, num_masks=6, size=(6, 6))
    softmax = nn.Softmax()
    return {
        "gradient": lambda: xaifn.gradient(net, x, 1, output=output),
        "deconvolution": lambda: xaifn.deconvolution(net, x, 1, output=output),
        "guided_backprop": lambda: xaifn.guided_backprop(net, x, 1, output=output),
        "gradcam": lambda: xaifn.gradcam(net, x, 1, layer=layer, output=output),
        "occlusion": lambda: xaifn.occlusion(net, softmax, x, 1, window=3, stride=3, output=output),
        "rise": lambda: xaifn.rise(net, softmax, x, 1, masks, output=output),
        "input_x_gradient": lambda: xaifn.input_x_gradient(net, x, 1, output=output),
        "integrated_gradients": lambda: xaifn.integrated_gradients(net, x, 1, steps=4, output=output),
        "gradcam_plus_plus": lambda: xaifn.gradcam_plus_plus(net, x, 1, layer=layer, output=output),
        "eigencam": lambda: xaifn.eigencam(net, x, 1, layer=layer, output=output),
        "scorecam": lambda: xaifn.scorecam(net, softmax, x, 1, layer=layer, output=output),
        "guided_gradcam": lambda: xaifn.guided_gradcam(net, x, 1, layer=layer, output=output),
    }


@pytest.fixture(scope="module")
def heads():
    net = TwoHeads()
    rng = np.random.default_rng(0)
    for p in net.get_parameters():
        p.set_data(ms.Tensor(rng.normal(0, 0.7, p.shape), ms.float32))
    return net


X = ms.Tensor(np.random.default_rng(1).normal(0, 1, (2, 3, 6, 6)), ms.float32)


@pytest.mark.parametrize("method", list(_calls(None, X, None)))
def test_tuple_is_refused_by_default(heads, method):
    with pytest.raises(ValueError, match="returns a tuple of 2 outputs.*`output=`"):
        _calls(heads, X, None)[method]()


@pytest.mark.parametrize("output, which", [(0, 0), (pick_aux, 1)])     # by index, by a function
def test_selected_output_equals_the_single_output_network(heads, output, which):
    single = _calls(Single(heads, which), X, None, layer="heads.conv")
    for method, call in _calls(heads, X, output).items():
        np.testing.assert_allclose(call().asnumpy(), single[method]().asnumpy(), rtol=1e-6, err_msg=method)


def test_dict_outputs_by_key():
    net = TwoHeads("dict")
    with pytest.raises(ValueError, match="dict with keys \\['aux', 'logits'\\]"):
        xaifn.gradient(net, X, 0)
    twin = TwoHeads()
    for a, b in zip(net.get_parameters(), twin.get_parameters()):
        b.set_data(a.value())
    np.testing.assert_allclose(xaifn.gradient(net, X, 4, output="aux").asnumpy(),
                               xaifn.gradient(twin, X, 4, output=1).asnumpy(), rtol=1e-6)


def test_one_selection_and_one_kernel_across_calls(heads):
    first = xaifn.gradient(heads, X, 1, output=1)
    selected = _cache.selected(heads, 1)
    assert selected is _cache.selected(heads, 1)
    kernels = dict(_cache._KERNELS[selected])  # pylint: disable=protected-access
    second = xaifn.gradient(heads, X, 1, output=1)
    assert dict(_cache._KERNELS[selected]) == kernels  # pylint: disable=protected-access
    np.testing.assert_array_equal(first.asnumpy(), second.asnumpy())


def test_class_api_and_bad_output(heads):
    single = Single(heads, 1)
    got = explanation.GradCAM(heads, layer="conv", output=1)(X, 2)
    np.testing.assert_allclose(got.asnumpy(), xaifn.gradcam(single, X, 2, layer="heads.conv").asnumpy(), rtol=1e-6)
    got = explanation.RISE(heads, nn.Softmax(), seed=0, num_masks=6, output=0)(X, 2)
    assert got.shape == (2, 1, 6, 6)
    with pytest.raises(TypeError, match="`output`"):
        explanation.Gradient(heads, output=1.5)
    with pytest.raises(TypeError, match="`output`"):
        xaifn.gradient(heads, X, 1, output=[0])
    with pytest.raises(ValueError, match="`targets`.*\\[0, 5\\)"):
        xaifn.gradient(heads, X, 7, output=1)
