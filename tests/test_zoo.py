"""Every method on mindcv families, each map checked against an independent computation.

Models are tiny configurations of mindcv 0.3.0's own classes, at the smallest input each accepts,
with BatchNorm statistics calibrated on random images (random-init zoo models are degenerate:
logits ~ 0 for MobileNets, ~ 1e5 for DenseNet). References, computed without xaifn:

* gradient: ms.grad of the model itself (eval mode) in PyNative;
* deconvolution / guided_backprop: ms.grad of a twin (same class, same weights) whose activation
  cells are replaced by cells with a ``bprop`` written out here (max(R, 0); max(R f'(z), 0) with
  f'(z) from ms.grad of the activation);
* gradcam: A and dA from a forward hook on a twin's layer adding a zero tensor (PyNative), then
  the formula and the layout (tokens / channel-last) in numpy, float64 bilinear resize;
* occlusion / rise / rise_plus: the model's own forward on the perturbed images, in numpy.

MATRIX says which methods run on which family (a subset per family, every method on several,
to stay within the suite's time budget); nothing is skipped.
"""
import zlib

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn, ops



# pylint: disable=wrong-import-position
from mindcv.models import (convnext, densenet, efficientnet, ghostnet, inceptionv3, mobilenetv2,  # noqa: E402
                           mobilenetv3, pvtv2, resnet, swintransformer, swintransformerv2, vit)
from mindcv.models.layers.activation import Swish  # noqa: E402

import xaifn  # noqa: E402
from xaifn import _rules, ood  # noqa: E402
from _numerics import assert_close, softmax_np  # noqa: E402
from test_gradcam import resize_bilinear_np  # noqa: E402

NUM_CLASSES = 5


def _build(family):
    """(model, input side, GradCAM layer, classifier cell name)."""
    if family == "resnet":
        return resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1], num_classes=NUM_CLASSES), 32, "layer3", "classifier"
    if family == "densenet":
        return densenet.DenseNet(growth_rate=8, block_config=(1, 1, 1, 1), num_init_features=8, bn_size=2,
                                 num_classes=NUM_CLASSES), 32, "features.denseblock3", "classifier"
    if family == "inception":
        return inceptionv3.InceptionV3(num_classes=NUM_CLASSES, aux_logits=False), 75, "inception6e", "classifier"
    if family == "mobilenet_v2":
        return mobilenetv2.MobileNetV2(alpha=0.35, num_classes=NUM_CLASSES), 32, "features.14", "classifier"
    if family == "mobilenet_v3":
        return mobilenetv3.MobileNetV3("small", alpha=0.35, num_classes=NUM_CLASSES), 32, "features.4", \
            "classifier.3"
    if family == "efficientnet":
        return efficientnet.EfficientNet("efficientnet_b0", 0.0, width_mult=0.25, depth_mult=0.25,
                                         num_classes=NUM_CLASSES), 32, "features.4", "mlp_head"
    if family == "ghostnet":
        return ghostnet.GhostNet(num_classes=NUM_CLASSES, width=0.2), 32, "blocks.6", "classifier"
    if family == "convnext":
        # layer scale 1 (mindcv's 1e-6 makes every block an identity at random init)
        return convnext.ConvNeXt(3, NUM_CLASSES, depths=[1, 1, 1, 1], dims=[8, 16, 24, 32],
                                 layer_scale_init_value=1.0), 32, "feature.4", "classifier"
    if family == "convnextv2":
        return convnext.ConvNeXt(3, NUM_CLASSES, depths=[1, 1, 1, 1], dims=[8, 16, 24, 32], use_grn=True,
                                 layer_scale_init_value=0.0), 32, "feature.4", "classifier"
    if family == "vit":
        return vit.VisionTransformer(image_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2,
                                     num_classes=NUM_CLASSES), 32, "blocks.1.norm1", "head"
    if family == "swin":
        return swintransformer.SwinTransformer(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1],
                                               num_heads=[1, 2], window_size=4, num_classes=NUM_CLASSES), \
            32, "layers.0", "classifier"
    if family == "swinv2":
        return swintransformerv2.SwinTransformerV2(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1],
                                                   num_heads=[1, 2], window_size=4, num_classes=NUM_CLASSES,
                                                   pretrained_window_sizes=[0, 0]), 32, "layers.0", "head"
    if family == "pvtv2":
        return pvtv2.PyramidVisionTransformerV2(img_size=32, patch_size=4, embed_dims=[8, 16, 16, 16],
                                                num_heads=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2], depths=[1, 1, 1, 1],
                                                sr_ratios=[2, 1, 1, 1], num_classes=NUM_CLASSES), \
            32, "block_list.1.0", "head"
    raise KeyError(family)


ALL = ("gradient", "deconvolution", "guided_backprop", "gradcam", "occlusion", "rise", "rise_plus")
#: family -> methods checked on it (what each family needed is in docs/zoo.rst).
MATRIX = {
    "resnet": ALL,
    "densenet": ("gradient", "guided_backprop", "gradcam", "occlusion"),
    "inception": ("gradient", "gradcam"),
    "mobilenet_v2": ("deconvolution", "gradcam"),
    "mobilenet_v3": ("guided_backprop", "gradcam", "rise_plus"),
    "efficientnet": ("guided_backprop", "gradcam", "occlusion"),
    "ghostnet": ("deconvolution", "gradcam"),
    "convnext": ("gradient", "guided_backprop", "gradcam", "rise"),
    "convnextv2": ("gradient", "deconvolution", "gradcam", "occlusion", "rise_plus"),
    "vit": ("gradient", "deconvolution", "guided_backprop", "gradcam", "rise"),
    "swin": ("guided_backprop", "gradcam", "occlusion"),
    "swinv2": ("deconvolution", "gradcam", "rise"),
    "pvtv2": ("guided_backprop", "gradcam"),
}


def _calibrate(net, side, seed):
    """BatchNorm moving statistics := the batch statistics of one train-mode forward (momentum 1)."""
    norms = [c for _, c in net.cells_and_names() if isinstance(c, nn.BatchNorm2d)]
    saved = [c.bn_train for c in norms]
    for cell in norms:
        cell.bn_train = ops.BatchNorm(is_training=True, epsilon=cell.eps, momentum=1.0)
    images = np.random.default_rng(seed).normal(0, 1, (16, 3, side, side)).astype(np.float32)
    net.set_train(True)
    net(ms.Tensor(images))
    net.set_train(False)
    for cell, prim in zip(norms, saved):
        cell.bn_train = prim


def _twin(family, net):
    twin = _build(family)[0]
    values = {p.name: p.value() for p in net.get_parameters()}
    for p in twin.get_parameters():
        p.set_data(values[p.name].copy())
    return twin.set_train(False)


@pytest.fixture(scope="module")
def models():
    made = {}

    def get(family):
        if family not in made:
            # mindcv initialises from the global RNGs: seed them per family, so that the weights
            # (and so the maps checked) do not depend on which tests ran before
            seed = zlib.crc32(family.encode()) % 2 ** 31
            ms.set_seed(seed)
            np.random.seed(seed)
            net, side, layer, head = _build(family)
            _calibrate(net, side, seed=seed)
            made[family] = (net, side, layer, head)
        return made[family]
    return get


def _inputs(side, seed, n=2):
    return np.random.default_rng(seed).normal(0, 1, (n, 3, side, side)).astype(np.float32)


def _snapshot(net):
    return ({p.name: p.asnumpy().copy() for p in net.get_parameters()},
            [(n, type(c).__name__, c.training) for n, c in net.cells_and_names()])


def _logits(net, x):
    return net(ms.Tensor(x)).asnumpy().astype(np.float64)


# ---- references ------------------------------------------------------------------------------

def _input_gradient(net, x, t):
    def score(inputs):
        return ops.gather_elements(net(inputs), 1, ms.Tensor(t.reshape(-1, 1), ms.int32)).sum()
    return np.abs(ms.grad(score)(ms.Tensor(x)).asnumpy()).max(axis=1, keepdims=True)


class _RuleCell(nn.Cell):
    """The rule written out: forward f(z); backward max(R, 0) or max(R * f'(z), 0)."""

    def __init__(self, act, rule):
        super().__init__(auto_prefix=False)
        self.act = act
        self.rule = rule

    def construct(self, x):
        return self.act(x)

    def bprop(self, x, out, dout):  # pylint: disable=unused-argument
        if self.rule == "deconvolution":
            return (ops.maximum(dout, 0),)
        derivative = ms.grad(lambda z: self.act(z).sum())(x)
        return (ops.maximum(dout * derivative, 0),)


def _install_rules(twin, rule):
    kinds = _rules.ACTIVATION_CELLS["relu"] + _rules.ACTIVATION_CELLS["other"][:-1] + (Swish,)
    count = 0
    for _, parent in list(twin.cells_and_names()):
        if isinstance(parent, kinds):      # an activation made of activations is one activation
            continue
        for key, child in list(parent._cells.items()):  # pylint: disable=protected-access
            if isinstance(child, kinds):
                _set_cell(parent, key, _RuleCell(child, rule))
                count += 1
    assert count, "the family has activation cells"
    return twin


def _set_cell(parent, key, new):
    """parent.<key> = new, in a SequentialCell's list of cells too (as a user editing a model)."""
    old = parent._cells[key]  # pylint: disable=protected-access
    parent._cells[key] = new  # pylint: disable=protected-access
    if isinstance(getattr(parent, "cell_list", None), list):
        parent.cell_list = [new if c is old else c for c in parent.cell_list]


def _set_by_name(net, name, new):
    parent, _, key = name.rpartition(".")
    _set_cell(dict(net.cells_and_names())[parent], key, new)


def _gradcam_reference(twin, layer, x, t):
    cell = dict(twin.cells_and_names())[layer]
    store = {}

    def hook(_cell, _inputs, output):
        store["A"] = output
        return output + store["zero"]

    store["zero"] = ms.Tensor(np.zeros(_shape_of(twin, cell, x)), ms.float32)
    handle = cell.register_forward_hook(hook)
    try:

        def score(inputs, zero):
            store["zero"] = zero
            return ops.gather_elements(twin(inputs), 1, ms.Tensor(t.reshape(-1, 1), ms.int32)).sum()
        grads = ms.grad(score, grad_position=1)(ms.Tensor(x), store["zero"]).asnumpy().astype(np.float64)
    finally:
        handle.remove()
    activation = store["A"].asnumpy().astype(np.float64)
    activation, grads = _layout(activation, x.shape[2:]), _layout(grads, x.shape[2:])
    alpha = grads.mean(axis=(2, 3), keepdims=True)
    cam = np.maximum((alpha * activation).sum(axis=1, keepdims=True), 0)
    return resize_bilinear_np(cam, x.shape[2:])


def _shape_of(twin, cell, x):
    shapes = []
    handle = cell.register_forward_hook(lambda _c, _i, out: shapes.append(out.shape))
    twin(ms.Tensor(x))
    handle.remove()
    return shapes[0]


def _layout(a, size):
    """numpy: (N, K, h, w) as is; (N, T, D) tokens [class token first] onto their square grid."""
    if a.ndim == 4:
        return a
    n, tokens, dim = a.shape
    side = int(round(np.sqrt(tokens)))
    if side * side != tokens:                       # a class token first
        a, side = a[:, 1:], int(round(np.sqrt(tokens - 1)))
    assert side * side == a.shape[1] and size[0] == size[1]
    return a.reshape(n, side, side, dim).transpose(0, 3, 1, 2)


def _occlusion_reference(net, x, t, window, stride):
    n, _, h, w = x.shape
    p0 = softmax_np(_logits(net, x))[np.arange(n), t]
    total, count = np.zeros((n, 1, h, w)), np.zeros((h, w))
    for i in range(0, h - window + 1, stride):
        for j in range(0, w - window + 1, stride):
            occluded = x.copy()
            occluded[:, :, i:i + window, j:j + window] = 0
            d = p0 - softmax_np(_logits(net, occluded))[np.arange(n), t]
            total[:, 0, i:i + window, j:j + window] += d[:, None, None]
            count[i:i + window, j:j + window] += 1
    return total / np.maximum(count, 1)


def _rise_reference(net, x, t, masks, weight=None):
    out = np.zeros((x.shape[0], 1) + x.shape[2:])
    for k, mask in enumerate(masks):
        p = softmax_np(_logits(net, (x * mask).astype(np.float32)))[np.arange(x.shape[0]), t]
        if weight is not None:
            p = p * weight(k)
        out[:, 0] += p[:, None, None] * mask[0]
    return out / len(masks)


# ---- the matrix ------------------------------------------------------------------------------

CASES = [pytest.param(family, method, id=f"{family}-{method}") for family, methods in MATRIX.items() for method in methods]


@pytest.mark.parametrize("family, method", CASES)
def test_zoo_map_against_reference(models, family, method):
    net, side, layer, head = models(family)
    x = _inputs(side, seed=zlib.crc32(f"{family}-{method}".encode()))
    t = np.array([1, 3])
    before = _snapshot(net)
    softmax = nn.Softmax()
    if method == "gradient":
        got, expected = xaifn.gradient(net, ms.Tensor(x), t.tolist()), _input_gradient(net, x, t)
    elif method in ("deconvolution", "guided_backprop"):
        got = getattr(xaifn, method)(net, ms.Tensor(x), t.tolist())
        expected = _input_gradient(_install_rules(_twin(family, net), method), x, t)
        plain = _input_gradient(net, x, t)
        assert not np.allclose(got.asnumpy(), plain, rtol=1e-2), "the rule must change the map"
    elif method == "gradcam":
        got = xaifn.gradcam(net, ms.Tensor(x), t.tolist(), layer=layer)
        expected = _gradcam_reference(_twin(family, net), layer, x, t)
    elif method == "occlusion":
        window, stride = side // 2, side // 4
        got = xaifn.occlusion(net, softmax, ms.Tensor(x), t.tolist(), window=window, stride=stride)
        expected = _occlusion_reference(net, x, t, window, stride)
    else:
        masks = xaifn.rise_masks(seed=3, num_masks=6, size=(side, side))
        mask_array = np.asarray(masks[0:6])
        if method == "rise":
            got = xaifn.rise(net, softmax, ms.Tensor(x), t.tolist(), masks)
            expected = _rise_reference(net, x, t, mask_array)
        else:
            features = xaifn.features_view(net, head)
            params = ood.init(0, dict(net.cells_and_names())[head].in_channels, NUM_CLASSES)
            got = xaifn.rise_plus(net, softmax, ood.inlier_fn(params, features), ms.Tensor(x), t.tolist(), masks)
            expected = _rise_reference(net, x, t, mask_array, _inlier_weights(family, net, head, params, x, mask_array))
    assert np.abs(expected).max() > 1e-6, "a degenerate map checks nothing"
    assert_close(got, expected, rtol=2e-3)
    after = _snapshot(net)
    assert before[1] == after[1]
    for name, value in before[0].items():
        np.testing.assert_array_equal(after[0][name], value, err_msg=name)


def _inlier_weights(family, net, head, params, x, masks):
    """RISEPlus's s_ni from features of a twin whose classifier cell is edited away, in numpy."""
    twin = _twin(family, net)
    _set_by_name(twin, head, nn.Identity())

    def best(images):
        return ood.scores(params, twin(ms.Tensor(images.astype(np.float32)))).asnumpy().max(axis=1)
    s_min, s_max = best(np.zeros_like(x[:1]))[0], best(x)
    return lambda k: (np.clip(best(x * masks[k]), s_min, s_max) - s_min) / (s_max - s_min + 2.22e-16)


def test_every_family_and_method_is_in_the_matrix():
    assert len(MATRIX) >= 12
    assert all(sum(m in methods for methods in MATRIX.values()) >= 3 for m in ALL)


def test_oodnet_and_riseplus_on_a_zoo_model_by_head_name(models):
    from xaifn.explanation import OoDNet, RISEPlus  # pylint: disable=import-outside-toplevel
    net, side, _, head = models("densenet")
    x = _inputs(side, seed=7)
    with pytest.raises(AttributeError, match="head="):
        OoDNet(net, NUM_CLASSES)
    with pytest.raises(ValueError, match="'nope'"):
        OoDNet(net, NUM_CLASSES, head="nope")
    ood_net = OoDNet(net, NUM_CLASSES, head=head)
    twin = _twin("densenet", net)
    _set_by_name(twin, head, nn.Identity())
    expected = ood.scores(ood_net.params(), twin(ms.Tensor(x))).asnumpy()
    assert_close(ood_net(ms.Tensor(x)), expected, rtol=1e-4)
    assert xaifn.features_view(net)(ms.Tensor(x)).shape == (2, net.classifier.in_channels)  # found by name
    with pytest.warns(UserWarning, match="untrained"):
        saliency = RISEPlus(ood_net, net, nn.Softmax(), seed=0, num_masks=4)(ms.Tensor(x), 1)
    assert saliency.shape == (2, 1, side, side)
