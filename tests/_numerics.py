"""Numerical helpers shared by the test modules."""
import numpy as np
import mindspore as ms


def assert_close(got, expected, rtol=1e-5):
    """Elementwise, with an absolute slack of rtol times the largest abs(expected) (scale-relative)."""
    got = np.asarray(got.asnumpy() if isinstance(got, ms.Tensor) else got, np.float64)
    expected = np.asarray(expected, np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    atol = rtol * max(np.abs(expected).max(initial=0.0), 1e-30)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def softmax_np(values):
    """Row softmax (last axis) in float64."""
    values = np.asarray(values, np.float64)
    e = np.exp(values - values.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
