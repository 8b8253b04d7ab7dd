"""The class explanation.OoDNet: construction, forward modes, prepare_train, train, and the spec's
examples (OoDNet and RISEPlus on a LeNet5 with a checkpoint), against xaifn.ood's functions.
"""
import numpy as np
import mindspore as ms
import mindspore.dataset as ds
import pytest
from mindspore import nn
from mindspore.common.initializer import Normal
from mindspore.train import Callback, LearningRateScheduler

import xaifn
from xaifn import ood
from xaifn.explanation import OoDNet, RISEPlus

NUM_CLASSES = 5
TRAINABLE = ("head", "dense_w", "dense_b", "bn_gamma", "bn_beta")
ALL_KEYS = TRAINABLE + ("bn_mean", "bn_var")


def assert_close(got, expected, rtol=1e-5, atol=None):
    got = np.asarray(got.asnumpy() if isinstance(got, ms.Tensor) else got, np.float64)
    expected = np.asarray(expected.asnumpy() if isinstance(expected, ms.Tensor) else expected, np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    atol = rtol * max(np.abs(expected).max(initial=0.0), 1e-30) if atol is None else atol
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def state(cell):
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()}


def make_net(ood_zoo, seed=0):
    return ood_zoo.he_init(ood_zoo.FeatureNet(num_class=NUM_CLASSES), seed)


def make_data(seed, n=8, size=(8, 8), num_classes=NUM_CLASSES):
    """Images (n, 3, H, W) and one-hot labels (n, L), float32; labels follow the mean colour."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    images = rng.random((n, 3) + tuple(size), np.float32) * 0.5
    for i, k in enumerate(labels):
        images[i, k % 3] += 0.2 + 0.1 * k
    return images, np.eye(num_classes, dtype=np.float32)[labels]


def slices_dataset(images, labels, batch=4):
    return ds.NumpySlicesDataset((images, labels), column_names=["image", "label"], shuffle=False).batch(batch)


class Recorder(Callback):
    """Records the epochs, the loss of every step and the learning rate at each epoch's start."""

    def __init__(self):
        super().__init__()
        self.begins, self.ends, self.epochs, self.losses, self.rates = 0, 0, [], [], []

    def on_train_begin(self, run_context):
        self.begins += 1

    def on_train_epoch_begin(self, run_context):
        self.rates.append(float(run_context.original_args().optimizer.learning_rate.asnumpy()))

    def on_train_step_end(self, run_context):
        self.losses.append(float(np.asarray(run_context.original_args().net_outputs.asnumpy())))

    def on_train_epoch_end(self, run_context):
        self.epochs.append(run_context.original_args().cur_epoch_num)

    def on_train_end(self, run_context):
        self.ends += 1


# --------------------------------------------------------------------------------------------
# Construction
# --------------------------------------------------------------------------------------------

class NoFeatures(nn.Cell):
    def __init__(self, **attributes):
        super().__init__()
        self.fc = nn.Dense(4, 2)
        for name, value in attributes.items():
            setattr(self, name, value)

    def construct(self, x):
        return self.fc(x)


@pytest.mark.parametrize("underlying, num_classes, error", [
    (None, 5, TypeError),
    (lambda x: x, 5, TypeError),
    ("net", 5, TypeError),
    (NoFeatures(), 5, AttributeError),
    (NoFeatures(num_features=4), 5, AttributeError),                          # no output_features
    (NoFeatures(output_features=False), 5, AttributeError),                   # no num_features
    (NoFeatures(num_features="4", output_features=False), 5, TypeError),
    (NoFeatures(num_features=4.0, output_features=False), 5, TypeError),
    (NoFeatures(num_features=True, output_features=False), 5, TypeError),
    (NoFeatures(num_features=4, output_features=0), 5, TypeError),
    (NoFeatures(num_features=4, output_features="no"), 5, TypeError),
    (NoFeatures(num_features=4, output_features=None), 5, TypeError),
    (NoFeatures(num_features=0, output_features=False), 5, ValueError),
    (NoFeatures(num_features=4, output_features=False), 5.0, TypeError),
    (NoFeatures(num_features=4, output_features=False), "5", TypeError),
    (NoFeatures(num_features=4, output_features=False), True, TypeError),
    (NoFeatures(num_features=4, output_features=False), None, TypeError),
    (NoFeatures(num_features=4, output_features=False), 0, ValueError),
    (NoFeatures(num_features=4, output_features=False), -3, ValueError),
])
def test_constructor_rejects_bad_arguments(underlying, num_classes, error):
    with pytest.raises(error):
        OoDNet(underlying, num_classes)


def test_properties_and_parameters(ood_zoo):
    net = make_net(ood_zoo)
    ood_net = OoDNet(net, NUM_CLASSES)
    assert ood_net.num_classes == NUM_CLASSES
    assert ood_net.underlying is net
    assert isinstance(ood_net, nn.Cell)
    names = [p.name for p in ood_net.get_parameters()]
    assert sorted(names) == sorted(ALL_KEYS)                      # the network's are not children
    initial = ood.init(0, net.num_features, NUM_CLASSES)
    params = ood_net.params()
    assert set(params) == set(ALL_KEYS)
    for key in ALL_KEYS:
        np.testing.assert_array_equal(params[key].asnumpy(), initial[key].asnumpy())
    train_params = ood_net.get_train_parameters()
    assert [p.name for p in train_params] == list(TRAINABLE)
    assert all(isinstance(p, ms.Parameter) and p.requires_grad for p in train_params)
    with_underlying = ood_net.get_train_parameters(train_underlying=True)
    assert len(with_underlying) == 5 + len(net.trainable_params())
    assert all(p is q for p, q in zip(with_underlying[:5], train_params))
    assert all(any(p is q for q in with_underlying) for p in net.trainable_params())
    # the user's network keeps its flag and its parameter names
    assert net.output_features is False
    assert sorted(p.name for p in net.get_parameters()) == sorted(ood_zoo.FeatureNet().parameters_dict())


# --------------------------------------------------------------------------------------------
# Forward: logits in training mode, scores in evaluation mode
# --------------------------------------------------------------------------------------------

def test_forward_modes_match_the_functions(ood_zoo):
    net = make_net(ood_zoo)
    ood_net = OoDNet(net, NUM_CLASSES)
    ms.load_param_into_net(ood_net, {k: ms.Parameter(ms.Tensor(v), name=k) for k, v in {
        "dense_b": np.array([0.3], np.float32), "bn_gamma": np.array([1.4], np.float32),
        "bn_beta": np.array([-0.2], np.float32), "bn_mean": np.array([0.5], np.float32),
        "bn_var": np.array([2.0], np.float32)}.items()})
    x = ms.Tensor(make_data(1)[0])
    features = xaifn.network_view(net, output_features=True)(x)
    params = {k: ms.Tensor(v.asnumpy()) for k, v in ood_net.params().items()}

    ood_net.set_train(False)
    scores = ood_net(x)
    assert scores.shape == (8, NUM_CLASSES)
    assert_close(scores, ood.scores(params, features), rtol=1e-6)
    assert np.all(np.abs(scores.asnumpy()) <= 1)
    assert_close(ood_net.bn_mean, [0.5], rtol=0)                  # evaluation leaves the stats
    assert_close(ood_net.bn_var, [2.0], rtol=0)

    ood_net.set_train(True)
    try:
        logits = ood_net(x)
    finally:
        ood_net.set_train(False)
    expected, new_mean, new_var = ood.logits(params, features)
    assert logits.shape == (8, NUM_CLASSES)
    assert_close(logits, expected, rtol=1e-5)
    assert not np.allclose(logits.asnumpy(), scores.asnumpy())
    assert_close(ood_net.bn_mean, new_mean, rtol=1e-6)            # training updates the stats
    assert_close(ood_net.bn_var, new_var, rtol=1e-6)
    assert net.training is False and net.output_features is False


def test_set_train_leaves_the_underlying_alone(ood_zoo):
    net = make_net(ood_zoo)
    ood_net = OoDNet(net, NUM_CLASSES)
    for flag in (True, False):
        net.set_train(flag)
        ood_net.set_train(True)
        assert ood_net.training is True
        ood_net.set_train(False)
        assert ood_net.training is False
        assert net.training is flag and net.output_features is False


# --------------------------------------------------------------------------------------------
# prepare_train
# --------------------------------------------------------------------------------------------

def test_prepare_train_defaults(ood_zoo):
    net = make_net(ood_zoo)
    ood_net = OoDNet(net, NUM_CLASSES)
    optimizer, scheduler = ood_net.prepare_train()
    assert isinstance(optimizer, nn.Momentum)
    assert isinstance(scheduler, LearningRateScheduler)
    assert float(optimizer.learning_rate.asnumpy()) == pytest.approx(0.1)
    assert float(optimizer.momentum.asnumpy()) == pytest.approx(0.9)
    assert float(optimizer.weight_decay) == pytest.approx(1e-4)
    assert [p.name for p in optimizer.parameters] == list(TRAINABLE)
    optimizer, _ = ood_net.prepare_train(train_underlying=True)
    assert len(optimizer.parameters) == 5 + len(net.trainable_params())


def test_prepare_train_arguments(ood_zoo):
    ood_net = OoDNet(make_net(ood_zoo), NUM_CLASSES)
    optimizer, scheduler = ood_net.prepare_train(learning_rate=0.05, momentum=0.5, weight_decay=0.01,
                                                 lr_base_factor=0.5, lr_epoch_denom=2)
    assert float(optimizer.learning_rate.asnumpy()) == pytest.approx(0.05)
    assert float(optimizer.momentum.asnumpy()) == pytest.approx(0.5)
    assert float(optimizer.weight_decay) == pytest.approx(0.01)
    for bad, error in [(dict(learning_rate="0.1"), TypeError), (dict(momentum=None), TypeError),
                       (dict(weight_decay=[0.1]), TypeError), (dict(lr_base_factor="x"), TypeError),
                       (dict(lr_epoch_denom=0), ValueError), (dict(lr_epoch_denom=2.5), TypeError),
                       (dict(train_underlying=1), TypeError), (dict(train_underlying="yes"), TypeError)]:
        with pytest.raises(error):
            ood_net.prepare_train(**bad)


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------

def functional_training(net, images, labels, epochs, rates, batch=4, weight_decay=1e-4):
    """The same training with xaifn.ood.train_step: rates[e] is the rate of epoch e."""
    features_fn = xaifn.network_view(net, output_features=True)
    params = ood.init(0, net.num_features, labels.shape[1])
    opt_state = ood.init_opt_state(params)
    losses = []
    for epoch in range(epochs):
        for start in range(0, len(images), batch):
            features = features_fn(ms.Tensor(images[start:start + batch]))
            params, opt_state, loss = ood.train_step(params, opt_state, features,
                                                     ms.Tensor(labels[start:start + batch]), rates[epoch],
                                                     0.9, weight_decay)
            losses.append(float(loss))
    return params, losses


def test_train_equals_functional_steps_with_the_schedule(ood_zoo):
    net = make_net(ood_zoo)
    images, labels = make_data(2)
    ood_net = OoDNet(net, NUM_CLASSES)
    recorder = Recorder()
    ood_net.train(slices_dataset(images, labels), nn.SoftmaxCrossEntropyWithLogits(), callbacks=recorder,
                  epoch=3, lr_base_factor=0.5, lr_epoch_denom=1)
    np.testing.assert_allclose(recorder.rates, [0.1, 0.05, 0.025], rtol=1e-6)
    expected, expected_losses = functional_training(net, images, labels, 3, [0.1, 0.05, 0.025])
    np.testing.assert_allclose(recorder.losses, expected_losses, rtol=1e-5)
    for key in ALL_KEYS:
        np.testing.assert_allclose(getattr(ood_net, key).asnumpy(), expected[key].asnumpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=key)


def test_train_from_a_generator_dataset(ood_zoo):
    net = make_net(ood_zoo)
    images, labels = make_data(3)

    def batches():
        for start in range(0, 8, 4):
            yield images[start:start + 4], labels[start:start + 4]

    generated = ds.GeneratorDataset(batches, column_names=["image", "label"], shuffle=False)
    from_generator = OoDNet(net, NUM_CLASSES)
    recorder = Recorder()
    from_generator.train(generated, nn.SoftmaxCrossEntropyWithLogits(), callbacks=[recorder], epoch=2)
    assert len(recorder.losses) == 4
    expected, expected_losses = functional_training(net, images, labels, 2, [0.1, 0.1])
    np.testing.assert_allclose(recorder.losses, expected_losses, rtol=1e-5)
    for key in ALL_KEYS:
        np.testing.assert_allclose(getattr(from_generator, key).asnumpy(), expected[key].asnumpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=key)


def test_train_reduces_the_loss_and_calls_back_once_per_epoch(ood_zoo):
    net = make_net(ood_zoo)
    images, labels = make_data(4, n=16)
    ood_net = OoDNet(net, NUM_CLASSES)
    recorder = Recorder()
    before = nn.SoftmaxCrossEntropyWithLogits()(ood_net.set_train(True)(ms.Tensor(images)), ms.Tensor(labels))
    ood_net.set_train(False)
    ood_net.train(slices_dataset(images, labels, batch=8), nn.SoftmaxCrossEntropyWithLogits(),
                  callbacks=[recorder], epoch=6)
    assert recorder.epochs == [1, 2, 3, 4, 5, 6]
    assert recorder.begins == 1 and recorder.ends == 1
    assert len(recorder.losses) == 12
    per_epoch = np.array(recorder.losses).reshape(6, 2).mean(axis=1)
    assert per_epoch[-1] < 0.8 * per_epoch[0]           # measured: 1.77 -> 1.29
    after = nn.SoftmaxCrossEntropyWithLogits()(ood_net.set_train(True)(ms.Tensor(images)), ms.Tensor(labels))
    ood_net.set_train(False)
    assert float(after.mean()) < 0.8 * float(before.mean())


@pytest.mark.parametrize("net_training", [False, True])
def test_train_leaves_the_underlying_untouched(ood_zoo, net_training):
    net = make_net(ood_zoo)
    net.set_train(net_training)
    before = state(net)
    images, labels = make_data(5)
    ood_net = OoDNet(net, NUM_CLASSES)
    head_before = state(ood_net)
    ood_net.train(slices_dataset(images, labels), nn.SoftmaxCrossEntropyWithLogits(), epoch=2)
    for name, value in state(net).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert net.training is net_training and net.output_features is False
    changed = [k for k, v in state(ood_net).items() if not np.array_equal(v, head_before[k])]
    assert set(changed) >= {"head", "dense_w", "bn_gamma", "bn_beta", "bn_mean", "bn_var"}


def test_train_underlying_changes_its_weights_only(ood_zoo):
    net = make_net(ood_zoo)
    net.set_train(True)
    before = state(net)
    images, labels = make_data(6)
    ood_net = OoDNet(net, NUM_CLASSES)
    ood_net.train(slices_dataset(images, labels), nn.SoftmaxCrossEntropyWithLogits(), epoch=2,
                  train_underlying=True)
    after = state(net)
    changed = [name for name in before if not np.array_equal(after[name], before[name])]
    assert {"conv.weight", "fc1.weight", "fc1.bias"} <= set(changed)
    # fc2 (the logits layer) gets no gradient from the features, only the optimizer's weight decay
    for name in ("fc2.weight", "fc2.bias"):
        assert np.abs(after[name] - before[name]).max() <= 1e-3 * np.abs(before[name]).max()
    assert net.training is True and net.output_features is False
    assert sorted(p.name for p in net.get_parameters()) == sorted(before)


def test_train_with_a_given_optimizer_and_scheduler(ood_zoo):
    net = make_net(ood_zoo)
    images, labels = make_data(7)
    ood_net = OoDNet(net, NUM_CLASSES)
    optimizer = nn.Momentum(ood_net.get_train_parameters(), learning_rate=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = LearningRateScheduler(lambda lr, step: lr)
    ood_net.train(slices_dataset(images, labels), nn.SoftmaxCrossEntropyWithLogits(), epoch=2,
                  optimizer=optimizer, scheduler=scheduler)
    expected, _ = functional_training(net, images, labels, 2, [0.05, 0.05])
    for key in ALL_KEYS:
        np.testing.assert_allclose(getattr(ood_net, key).asnumpy(), expected[key].asnumpy(),
                                   rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("dataset", [None, [(np.zeros((2, 3, 8, 8)), np.eye(5)[:2])], np.zeros((2, 3, 8, 8)),
                                     "cifar-10"])
def test_train_rejects_a_non_dataset(ood_zoo, dataset):
    ood_net = OoDNet(make_net(ood_zoo), NUM_CLASSES)
    with pytest.raises(TypeError):
        ood_net.train(dataset, nn.SoftmaxCrossEntropyWithLogits(), epoch=1)


def test_train_rejects_bad_arguments(ood_zoo):
    ood_net = OoDNet(make_net(ood_zoo), NUM_CLASSES)
    data = slices_dataset(*make_data(8))
    with pytest.raises(TypeError):
        ood_net.train(data, "cross entropy", epoch=1)
    with pytest.raises(ValueError):
        ood_net.train(data, nn.SoftmaxCrossEntropyWithLogits(), epoch=0)
    with pytest.raises(TypeError):
        ood_net.train(data, nn.SoftmaxCrossEntropyWithLogits(), epoch=1.5)


# --------------------------------------------------------------------------------------------
# The spec's examples, with a small generated dataset standing in for CIFAR-10
# --------------------------------------------------------------------------------------------

class MyLeNet5(nn.Cell):
    """The spec's example classifier, verbatim."""

    def __init__(self, num_class, num_channel):
        super(MyLeNet5, self).__init__()

        # must add the following 2 attributes to your model
        self.num_features = 84  # no. of features, int
        self.output_features = False  # output features flag, bool

        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode='valid')
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode='valid')
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
        self.fc2 = nn.Dense(120, self.num_features, weight_init=Normal(0.02))
        self.fc3 = nn.Dense(self.num_features, num_class, weight_init=Normal(0.02))

    def construct(self, x):
        x = self.conv1(x)
        x = self.relu(x)
        x = self.max_pool2d(x)
        x = self.conv2(x)
        x = self.relu(x)
        x = self.max_pool2d(x)
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))

        # return the features tensor if output_features is True
        if self.output_features:
            return x

        x = self.fc3(x)
        return x


def create_dataset_cifar10_stand_in(seed=0, n=16, batch=8):
    """(image 3 x 32 x 32, one-hot label of 10 classes) batches, as the CIFAR-10 helper yields."""
    images, labels = make_data(seed, n=n, size=(32, 32), num_classes=10)
    return slices_dataset(images, labels, batch=batch)


def test_spec_examples(tmp_path):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    # prepare trained classifier
    trained = MyLeNet5(10, num_channel=3)
    ms.save_checkpoint(trained, str(tmp_path / "mylenet5.ckpt"))
    net = MyLeNet5(10, num_channel=3)
    param_dict = ms.load_checkpoint(str(tmp_path / "mylenet5.ckpt"))
    ms.load_param_into_net(net, param_dict)
    for name, value in state(net).items():
        np.testing.assert_array_equal(value, trained.parameters_dict()[name].asnumpy())
    # prepare train_dataset and your OoD network
    train_dataset = create_dataset_cifar10_stand_in()
    ood_net = OoDNet(net, 10)
    ood_net.train(train_dataset, nn.SoftmaxCrossEntropyWithLogits(), epoch=2)
    inputs = ms.Tensor(np.random.rand(1, 3, 32, 32), ms.float32)
    ood_map = ood_net(inputs)
    assert ood_map.shape == (1, 10)
    assert_close(ood_map, ood.scores(ood_net.params(), xaifn.network_view(net, output_features=True)(inputs)),
                 rtol=1e-6)
    # initialize RISEPlus explainer with the pretrained model and activation function
    activation_fn = ms.nn.Softmax()
    riseplus = RISEPlus(ood_net, net, activation_fn=activation_fn, num_masks=50)
    inputs = ms.Tensor(np.random.rand(2, 3, 32, 32), ms.float32)
    saliency = riseplus(inputs, 5)
    assert saliency.shape == (2, 1, 32, 32)
    assert np.all(np.isfinite(saliency.asnumpy())) and np.all(saliency.asnumpy() >= 0)
    assert riseplus(inputs, ms.Tensor([[5, 1], [2, 3]], ms.int32)).shape == (2, 2, 32, 32)
    assert riseplus(inputs, ms.Tensor([5, 1], ms.int32)).shape == (2, 1, 32, 32)
    # the OoD head round-trips through a checkpoint of its own
    ms.save_checkpoint(ood_net, str(tmp_path / "ood_net.ckpt"))
    restored = OoDNet(MyLeNet5(10, num_channel=3), 10)
    ms.load_param_into_net(restored, ms.load_checkpoint(str(tmp_path / "ood_net.ckpt")))
    for key in ALL_KEYS:
        np.testing.assert_array_equal(getattr(restored, key).asnumpy(), getattr(ood_net, key).asnumpy())
