"""Recompilation: a loop of calls passing fresh-but-equal activation / inlier functions vs reused ones.

The README's pattern `xaifn.rise(net, nn.Softmax(), ...)` builds a new activation Cell at each call;
`ood.inlier_fn(params, features)` made at each call builds a new function. Both are equal to the
previous call's, so the compiled kernel must be reused. Each case runs in a fresh process (LeNet5,
1 image 3x32x32, 500 lazy RiseMasks, 10 calls) and reports the total seconds of the loop (first call
included) and of calls 2..10.

Usage:
    python benchmarks/bench_recompile.py             # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_recompile.py --no-path
"""
import argparse
import os
import subprocess
import sys
import time

CASES = ("rise reused", "rise fresh", "rise_plus reused", "rise_plus fresh")


def child(case, calls):
    import numpy as np
    import mindspore as ms
    from mindspore import nn
    import xaifn
    from xaifn import ood
    from xaifn.models import LeNet5
    ms.set_seed(0)
    net = LeNet5()
    x = ms.Tensor(np.random.default_rng(0).random((1, 3, 32, 32)), ms.float32)
    masks = xaifn.RiseMasks(0, 500, (32, 32))
    features = xaifn.network_view(net, output_features=True)
    params = ood.init(0, 84, 10)
    softmax, inlier = nn.Softmax(), ood.inlier_fn(params, features)
    method, kind = case.split()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        act = nn.Softmax() if kind == "fresh" else softmax
        if method == "rise":
            xaifn.rise(net, act, x, 1, masks).asnumpy()
        else:
            inl = ood.inlier_fn(params, features) if kind == "fresh" else inlier
            xaifn.rise_plus(net, act, inl, x, 1, masks).asnumpy()
        times.append(time.perf_counter() - start)
    print(f"{sum(times):.2f} {sum(times[1:]):.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--no-path", action="store_true", help="keep PYTHONPATH (measure another checkout)")
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.calls)
        return
    env = dict(os.environ)
    if not args.no_path:
        env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"| case | {args.calls} calls s | calls 2..{args.calls} s |\n|---|---|---|")
    for case in CASES:
        out = subprocess.run([sys.executable, __file__, "--child", case, "--calls", str(args.calls)],
                             capture_output=True, text=True, check=True, env=env).stdout.split()
        print(f"| {case} | {out[-2]} | {out[-1]} |", flush=True)


if __name__ == "__main__":
    main()
