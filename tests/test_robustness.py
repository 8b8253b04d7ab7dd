"""Dependable under real use (issue 9): memory in bytes, recompilation, threads, changed networks,
non-finite values, input kinds, OoD training, Occlusion strides.

Each test reproduces a failure of the earlier code (wrong answer, MindSpore trace, unbounded memory)
and checks the fixed behaviour. Tiny networks from conftest.py, 8 x 8 to 16 x 16 images.
"""
import tracemalloc

import numpy as np
import mindspore as ms
import pytest
from mindspore import nn

import xaifn
from xaifn import _checks, _chunked
from _numerics import assert_close

SOFTMAX = nn.Softmax()


def uniform(seed, shape):
    return ms.Tensor(np.random.default_rng(seed).random(shape), ms.float32)


# ------------------------------------------------------------------------------------------------
# Item 5: the chunk knob is a byte budget; memory does not grow with the number of masks.
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [("256MiB", 256 * 2**20), ("1GB", 10**9), ("1.5KiB", 1536),
                                            (" 64 kb ", 64000), ("100B", 100)])
def test_chunk_byte_sizes_parse(text, expected):
    assert _checks.check_chunk(text) == _checks.ByteBudget(expected)
    assert _checks.check_chunk(7) == 7


def test_byte_budget_gives_fewer_images_per_step_for_larger_images(zoo):
    net = zoo.GlobalNet()
    budget = _checks.check_chunk("4MiB")
    steps = []
    for side in (8, 16, 32):
        per_image = _chunked.bytes_per_image(net, uniform(0, (1, 3, side, side)))
        # honest: at least the image itself and the network's intermediate outputs
        assert per_image > _chunked.PERTURBATION_COPIES * 3 * side * side * 4
        steps.append(_chunked.images_per_step(budget, per_image))
    assert steps[0] > steps[1] > steps[2] >= 1
    assert steps[0] * _chunked.bytes_per_image(net, uniform(0, (1, 3, 8, 8))) <= budget.bytes
    assert _chunked.images_per_step(_checks.check_chunk("1B"), 10**6) == 1  # never zero
    assert _chunked.images_per_step(5, 10**9) == 5                          # an int is images


@pytest.mark.parametrize("method", ["rise", "occlusion"])
def test_byte_chunk_gives_the_same_map_as_an_image_chunk(zoo, method):
    net, x = zoo.GlobalNet(), uniform(1, (2, 3, 8, 8))
    masks = xaifn.rise_masks(0, 40, (8, 8))
    run = {"rise": lambda c: xaifn.rise(net, SOFTMAX, x, [1, 2], masks, chunk=c),
           "occlusion": lambda c: xaifn.occlusion(net, SOFTMAX, x, [1, 2], chunk=c)}[method]
    reference = run(7).asnumpy()
    for chunk in ("20KiB", "1MiB", _chunked.DEFAULT_CHUNK):
        np.testing.assert_allclose(run(chunk).asnumpy(), reference, rtol=0, atol=1e-6)  # probabilities


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rendering_masks_needs_no_float64_copy_of_them_all():
    # the upsampled float64 grids were rendered for all masks at once: 3x the result's size here
    masks, peak = _peak_bytes(lambda: xaifn.rise_masks(0, 2000, (40, 40)))
    assert peak < 1.5 * masks.nbytes


def test_checking_float32_masks_copies_nothing(zoo):
    masks = xaifn.rise_masks(0, 2000, (16, 16))
    checked, peak = _peak_bytes(lambda: _checks.check_masks(masks, 16, 16))
    assert checked is masks or np.shares_memory(checked, masks)
    assert peak < 0.1 * masks.nbytes
