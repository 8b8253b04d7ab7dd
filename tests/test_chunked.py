"""`xaifn._chunked.blocked`, the one loop of every chunked method, on host arrays (no network)."""
import numpy as np
import mindspore as ms
from hypothesis import given, settings, strategies as st

from xaifn._chunked import block_sizes, blocked


class LazyRows:
    """Rows read `[i:j]` only, recording each read (a lazy mask set)."""

    def __init__(self, rows):
        self.rows, self.shape, self.reads = rows, rows.shape, []

    def __getitem__(self, index):
        self.reads.append((index.start, index.stop))
        return self.rows[index]


def values_of(x, c):
    """The pair values of the tests: v[n, s] = x_n * 10 + c_s."""
    return x[:, None] * 10 + c[None, :]


def checked_step(calls):
    """A `blocked` step returning v (b, k) for its block, checking the padding and recording the call."""
    def step(where, part, copy_rows):
        (x,), (c,) = part, copy_rows
        calls.append((x.shape[0], c.shape[0]))
        real = where.samples.stop - where.samples.start, where.copies.stop - where.copies.start
        assert not x[real[0]:].any() and not c[real[1]:].any()       # the padding: zero rows
        return values_of(x, c)
    return step


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), count=st.integers(1, 40), chunk=st.integers(1, 50))
def test_blocks_cover_every_pair_once_within_the_chunk(n, count, chunk):
    x = np.arange(1, n + 1, dtype=np.float64)
    copies = LazyRows(np.arange(1, count + 1, dtype=np.float64))
    calls = []
    values = blocked(checked_step(calls), (x,), (copies,), chunk)
    np.testing.assert_array_equal(values, values_of(x, copies.rows))   # each pair once, padding dropped
    ((b, k),) = set(calls)                               # one shape: one compiled kernel serves all
    assert b * k <= chunk and block_sizes(n, count, chunk) == (b, k)
    sample_blocks, copy_blocks = -(-n // b), -(-count // k)
    assert len(calls) == sample_blocks * copy_blocks
    # balanced: the fewest blocks the chunk allows, padded by less than one row per block
    assert sample_blocks == -(-n // chunk) and copy_blocks == -(-count // (chunk // b))
    assert b * sample_blocks - n < sample_blocks and k * copy_blocks - count < copy_blocks
    # the copies are read one call at a time, never whole (unless one call holds them all)
    assert len(copies.reads) == len(calls) and max(stop - start for start, stop in copies.reads) <= k


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 7), count=st.integers(1, 30), chunk=st.integers(1, 40))
def test_fold_sums_over_the_copies(n, count, chunk):
    x = np.arange(1, n + 1, dtype=np.float64)
    copies = np.arange(1, count + 1, dtype=np.float64)

    def step(where, part, copy_rows, total):
        assert (total is None) == (where.copies.start == 0)   # the sums start at each sample block
        padded = copy_rows[0].shape[0] - (where.copies.stop - where.copies.start)
        sums = values_of(part[0], copy_rows[0]).sum(1) - 10 * part[0] * padded   # a padded copy adds 0
        return (sums,) if total is None else (total[0] + sums,)
    (sums,) = blocked(step, (x,), (copies,), chunk, fold=True)
    np.testing.assert_array_equal(sums, values_of(x, copies).sum(1))


def test_tensor_samples_are_cut_and_handed_on_as_tensors():
    x = ms.Tensor(np.arange(5, dtype=np.float32).reshape(5, 1))
    seen = []

    def step(where, part, copy_rows):
        seen.append(type(part[0]))
        return np.broadcast_to(part[0].asnumpy()[:, :1], (part[0].shape[0], copy_rows[0].shape[0]))
    out = blocked(step, (x,), (np.ones(3),), 2)           # blocks of 2 samples, one copy each
    assert seen == [ms.Tensor] * 9
    np.testing.assert_array_equal(out, np.repeat(np.arange(5.0)[:, None], 3, 1))


def test_copy_rows_keep_their_precision():
    """Integer copy rows (ScoreCAM's channel indices) stay exact integers in a float16 or bfloat16
    run (float16 holds integers exactly only up to 2048, bfloat16 up to 256); real rows of a
    float64 run stay float64 (IG's quadrature weights, SmoothGrad's noise)."""
    from xaifn._chunked import _copy_tensor  # pylint: disable=import-outside-toplevel
    channels = np.arange(2040, 2060)
    for dtype in (ms.float16, ms.bfloat16, ms.float32):
        rows = _copy_tensor(channels, dtype)
        assert rows.dtype == ms.int32
        np.testing.assert_array_equal(rows.asnumpy(), channels)
    weights = np.random.default_rng(0).random(50)
    np.testing.assert_array_equal(_copy_tensor(weights, ms.float64).asnumpy(), weights)
    assert _copy_tensor(weights, ms.float16).dtype == ms.float16
    np.testing.assert_array_equal(_copy_tensor(np.array([True, False]), ms.float32).asnumpy(), [1.0, 0.0])
