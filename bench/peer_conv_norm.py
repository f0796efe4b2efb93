#!/usr/bin/python3
"""PyTorch peer of bench/bench_conv_norm.c: the same ops and shapes, timed the same way
(median of --steps runs after --warmup), with torch.set_num_threads(OMP_NUM_THREADS or 2).

    /usr/bin/python3 bench/peer_conv_norm.py [--steps 25] [--warmup 5] [--json] [--tuned-malloc]

--json prints {"median": {case: ms}, "min": {case: ms}}; otherwise one line per case.
--tuned-malloc re-runs itself with glibc's mmap/trim thresholds raised, so that freed blocks
are reused instead of returned to the system (page faults are expensive on these machines and
swing PyTorch's timings; this is PyTorch's best case, and what craft's pool does).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def median_min_ms(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2] * 1e3, ts[0] * 1e3


def cases():
    g = torch.Generator().manual_seed(0)

    def r(*shape, grad=False):
        return (torch.rand(shape, generator=g) * 2 - 1).requires_grad_(grad)

    out = {}
    # conv 3x3, N=16, C=128, 16x16, padding 1, with bias
    x, w, b = r(16, 128, 16, 16, grad=True), r(128, 128, 3, 3, grad=True), r(128, grad=True)
    gy = r(16, 128, 16, 16)

    def conv_fwd():
        with torch.no_grad():
            F.conv2d(x, w, b, 1, 1)

    def conv_fwd_bwd():
        for t in (x, w, b):
            t.grad = None
        F.conv2d(x, w, b, 1, 1).backward(gy)

    out["conv3x3 fwd"] = conv_fwd
    out["conv3x3 fwd+bwd"] = conv_fwd_bwd
    # transposed conv 4x4 stride 2 (upsampling), N=16, 128 -> 64 channels, 16x16 -> 32x32
    xt, wt, bt = r(16, 128, 16, 16, grad=True), r(128, 64, 4, 4, grad=True), r(64, grad=True)
    gyt = r(16, 64, 32, 32)

    def convt_fwd_bwd():
        for t in (xt, wt, bt):
            t.grad = None
        F.conv_transpose2d(xt, wt, bt, 2, 1).backward(gyt)

    out["convT4x4s2 fwd+bwd"] = convt_fwd_bwd
    # group norm, N=16, C=128, 32x32, 32 groups, affine
    xg, wg, bg = r(16, 128, 32, 32, grad=True), r(128, grad=True), r(128, grad=True)
    gyg = r(16, 128, 32, 32)

    def gn_fwd():
        with torch.no_grad():
            F.group_norm(xg, 32, wg, bg, 1e-5)

    def gn_fwd_bwd():
        for t in (xg, wg, bg):
            t.grad = None
        F.group_norm(xg, 32, wg, bg, 1e-5).backward(gyg)

    out["groupnorm fwd"] = gn_fwd
    out["groupnorm fwd+bwd"] = gn_fwd_bwd
    # layer norm over the last dim, 16 x 256 tokens of width 512, affine
    xl, wl, bl = r(16, 256, 512, grad=True), r(512, grad=True), r(512, grad=True)
    gyl = r(16, 256, 512)

    def ln_fwd_bwd():
        for t in (xl, wl, bl):
            t.grad = None
        F.layer_norm(xl, [512], wl, bl, 1e-5).backward(gyl)

    out["layernorm fwd+bwd"] = ln_fwd_bwd
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tuned-malloc", action="store_true")
    a = ap.parse_args()
    if a.tuned_malloc and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(1 << 30), MALLOC_TRIM_THRESHOLD_=str(1 << 31),
                   MALLOC_TOP_PAD_=str(1 << 28))
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    res = {name: median_min_ms(fn, a.steps, a.warmup) for name, fn in cases().items()}
    if a.json:
        print(json.dumps({"median": {k: v[0] for k, v in res.items()}, "min": {k: v[1] for k, v in res.items()}}))
    else:
        for k, v in res.items():
            print("%-20s torch %.2f ms (min %.2f)" % (k, v[0], v[1]))


if __name__ == "__main__":
    main()
