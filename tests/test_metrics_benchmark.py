"""xaifn.benchmark: the original's metric classes as thin wrappers over xaifn.metrics."""
import functools

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

import xaifn
from xaifn import explanation, metrics
from xaifn.benchmark import ClassSensitivity, Faithfulness, Localization, Robustness

SOFTMAX = nn.Softmax()


@pytest.fixture(scope="module")
def setup(pzoo):
    net, _, _ = pzoo.linear_net((2, 6, 6), num_class=3, seed=31)
    x = ms.Tensor(np.random.default_rng(32).random((4, 2, 6, 6)), ms.float32)
    return net, x, ms.Tensor([0, 1, 2, 1], ms.int32)


@pytest.mark.parametrize("name,function", [("NaiveFaithfulness", metrics.naive_faithfulness),
                                           ("DeletionAUC", metrics.deletion_auc),
                                           ("InsertionAUC", metrics.insertion_auc)])
def test_faithfulness_class_equals_function(setup, name, function):
    net, x, t = setup
    gradient = explanation.Gradient(net)
    got = Faithfulness(3, SOFTMAX, name).evaluate(gradient, x, t)
    assert isinstance(got, np.ndarray) and got.shape == (4,)
    np.testing.assert_allclose(got, function(net, SOFTMAX, x, t, gradient(x, t)).asnumpy(), rtol=1e-6)
    saliency = np.random.default_rng(33).random((4, 1, 6, 6))
    np.testing.assert_allclose(Faithfulness(3, SOFTMAX, name).evaluate(gradient, x, t, ms.Tensor(saliency)),
                               function(net, SOFTMAX, x, t, saliency).asnumpy(), rtol=1e-6)


def test_localization_robustness_class_sensitivity(setup):
    net, x, t = setup
    gradient = explanation.Gradient(net)
    maps = gradient(x, t)
    masks = np.zeros((4, 1, 6, 6))
    masks[:, :, 1:4, 1:4] = 1
    np.testing.assert_array_equal(Localization(3).evaluate(gradient, x, t, mask=masks),
                                  metrics.pointing_game(maps, masks).asnumpy())
    np.testing.assert_allclose(Localization(3, "IoSR").evaluate(gradient, x, t, mask=ms.Tensor(masks)),
                               metrics.iosr(maps, masks).asnumpy())
    robustness = Robustness(3, SOFTMAX, seed=4)
    np.testing.assert_allclose(robustness.evaluate(gradient, x, t),
                               metrics.max_sensitivity(gradient, x, t, seed=4).asnumpy())
    np.testing.assert_allclose(ClassSensitivity().evaluate(gradient, x),
                               metrics.class_sensitivity(functools.partial(xaifn.gradient, net), net, x).asnumpy())
    rise = explanation.RISE(net, SOFTMAX, seed=0, num_masks=20)   # no RISE special case needed
    assert ClassSensitivity().evaluate(rise, x).shape == (4,)


def test_running_results():
    metric = Localization(3)
    metric.aggregate(np.array([1.0, 0.0, np.nan]), ms.Tensor([0, 2, 2]))
    metric.aggregate(0.5, 2)
    metric.aggregate(ms.Tensor([1.0, 1.0], ms.float32), 0)
    assert metric.get_results() == {0: [1.0, 1.0, 1.0], 1: [], 2: [0.0, pytest.approx(np.nan, nan_ok=True), 0.5]}
    assert metric.class_performances == [1.0, 0.0, 0.25]
    assert metric.performance == pytest.approx(3.5 / 5)
    metric.reset()
    assert metric.get_results() == {0: [], 1: [], 2: []} and metric.performance == 0.0
    agnostic = ClassSensitivity()
    agnostic.aggregate(np.array([0.2, np.inf]))
    agnostic.aggregate(0.4)
    assert agnostic.performance == pytest.approx(0.3) and len(agnostic.get_results()) == 3
    agnostic.reset()
    assert agnostic.get_results() == []
    with pytest.raises(ValueError, match="targets"):
        metric.aggregate(np.array([1.0, 0.5]), [0, 3])
    with pytest.raises(TypeError, match="result"):
        metric.aggregate("high", 0)


def test_bad_arguments(setup):
    net, x, t = setup
    gradient = explanation.Gradient(net)
    with pytest.raises(TypeError, match="num_labels"):
        Faithfulness(3.0, SOFTMAX)
    with pytest.raises(ValueError, match="num_labels"):
        Localization(0)
    with pytest.raises(TypeError, match="activation_fn"):
        Faithfulness(3, "softmax")
    with pytest.raises(ValueError, match="metric"):
        Faithfulness(3, SOFTMAX, "AUC")
    with pytest.raises(ValueError, match="metric"):
        Localization(3, "Pointing")
    with pytest.raises(TypeError, match="explainer"):
        Faithfulness(3, SOFTMAX).evaluate(lambda a, b: a, x, t)
    with pytest.raises(ValueError, match="num_labels"):
        Faithfulness(5, SOFTMAX).evaluate(gradient, x, t)
    with pytest.raises(ValueError, match="targets"):
        Robustness(3, SOFTMAX).evaluate(gradient, x, 3)
    with pytest.raises(ValueError, match="mask"):
        Localization(3).evaluate(gradient, x, t)
    with pytest.raises(ValueError, match="saliency"):
        Localization(3).evaluate(gradient, x, t, np.ones((4, 1, 5, 6)), mask=np.ones((4, 1, 6, 6)))
    with pytest.raises(TypeError, match="inputs"):
        ClassSensitivity().evaluate(gradient, x.asnumpy())
