"""Small reference networks used by the examples, tests and benchmarks."""
from mindspore import nn
from mindspore.common.initializer import Normal


class LeNet5(nn.Cell):
    """The classic LeNet5 for 32 x 32 inputs (as in MindSpore's model zoo).

    `num_features` and `output_features` follow the OoDNet contract: with `output_features`
    True the network returns its 84 penultimate features instead of logits.
    """

    def __init__(self, num_class=10, num_channel=3):
        super().__init__()
        self.num_features = 84
        self.output_features = False
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
        self.fc2 = nn.Dense(120, self.num_features, weight_init=Normal(0.02))
        self.fc3 = nn.Dense(self.num_features, num_class, weight_init=Normal(0.02))

    def construct(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        if self.output_features:
            return x
        return self.fc3(x)


class _Residual(nn.Cell):
    def __init__(self, channels_in, channels_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, pad_mode="pad", padding=1)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, pad_mode="pad", padding=1)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.shortcut = (nn.SequentialCell([nn.Conv2d(channels_in, channels_out, 1, stride=stride),
                                            nn.BatchNorm2d(channels_out)])
                         if stride != 1 or channels_in != channels_out else nn.Identity())

    def construct(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + self.shortcut(x))


class SmallResNet(nn.Cell):
    """A ResNet-style CNN: a stride-2 stem, three residual stages (16, 32, 64 channels), global pooling."""

    def __init__(self, num_class=10, num_channel=3, widths=(16, 32, 64)):
        super().__init__()
        self.num_features = widths[-1]
        self.output_features = False
        self.stem = nn.SequentialCell([nn.Conv2d(num_channel, widths[0], 3, stride=2, pad_mode="pad", padding=1),
                                       nn.BatchNorm2d(widths[0]), nn.ReLU()])
        stages, channels = [], widths[0]
        for i, width in enumerate(widths):
            stages.append(_Residual(channels, width, 1 if i == 0 else 2))
            channels = width
        self.stages = nn.SequentialCell(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(channels, num_class)

    def construct(self, x):
        x = self.flatten(self.pool(self.stages(self.stem(x))))
        if self.output_features:
            return x
        return self.fc(x)
