#!/usr/bin/python3
"""Peer for bench/bench_attention.c: PyTorch CPU attention the way a user of that torch would
write it: torch.nn.functional.scaled_dot_product_attention (fused, flash-style on the CPU) where
torch has it (2.0 and later), else softmax(q k^T * scale [+ causal mask]) v with autograd (torch
1.13). --naive forces the second. The JSON says which ran ("path": "sdpa" or "naive").

Shapes (name: batch*heads, Lq, Lk, D, causal) match bench_attention.c. Times are the median of
--reps runs after --warmup, in ms (and the minimum, *_min_ms, which shared machines disturb
less): forward under no_grad, and forward + backward.
Usage: /usr/bin/python3 bench/peer_attention.py [--json] [--threads 2] [--reps 10] [--warmup 3]
                                                [--tuned-malloc] [--only NAME,...] [--naive]
--tuned-malloc re-executes with glibc malloc kept from returning freed blocks to the kernel
(page faults are very expensive on these VMs), as ../shared/bench/torch_tiny_unet.py does.
"""
import argparse, json, math, os, statistics, sys, time

SHAPES = [
    # name, batch*heads, Lq, Lk, D, causal
    ('tiny_unet', 64, 64, 64, 32, 0),
    ('clip_text', 48, 77, 77, 64, 1),
    ('sd_1024', 8, 1024, 1024, 64, 0),
    ('cross_4096x77', 8, 4096, 77, 40, 0),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--json', action='store_true', help='print one JSON object instead of text')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--reps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--tuned-malloc', action='store_true')
    ap.add_argument('--only', default='')
    ap.add_argument('--naive', action='store_true', help='softmax(q k^T) v even where torch has SDPA')
    a = ap.parse_args()
    if a.tuned_malloc and 'MALLOC_MMAP_THRESHOLD_' not in os.environ:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='33554432', MALLOC_TRIM_THRESHOLD_='17179869184',
                   MALLOC_TOP_PAD_='536870912')
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    import torch
    if a.threads:
        torch.set_num_threads(a.threads)
    sdpa = None if a.naive else getattr(torch.nn.functional, 'scaled_dot_product_attention', None)
    res = {'torch': torch.__version__, 'num_threads': torch.get_num_threads(),
           'malloc_tuned': 'MALLOC_MMAP_THRESHOLD_' in os.environ, 'shapes': {},
           'path': 'sdpa' if sdpa else 'naive'}
    only = set(a.only.split(',')) if a.only else None
    torch.manual_seed(0)
    for name, nb, lq, lk, d, causal in SHAPES:
        if only and name not in only:
            continue
        q = torch.randn(nb, lq, d, requires_grad=True)
        k = torch.randn(nb, lk, d, requires_grad=True)
        v = torch.randn(nb, lk, d, requires_grad=True)
        go = torch.randn(nb, lq, d)
        mask = None
        if causal:
            mask = torch.zeros(lq, lk).masked_fill(~torch.ones(lq, lk, dtype=torch.bool).tril(), float('-inf'))
        scale = 1.0 / math.sqrt(d)

        def attn():
            if sdpa:
                return sdpa(q, k, v, is_causal=bool(causal))
            s = (q @ k.transpose(-1, -2)) * scale
            if mask is not None:
                s = s + mask
            return s.softmax(-1) @ v

        def fwd():
            with torch.no_grad():
                attn()

        def fwdbwd():
            attn().backward(go)
            q.grad = k.grad = v.grad = None

        out = {}
        for label, fn in (('fwd_ms', fwd), ('fwdbwd_ms', fwdbwd)):
            for _ in range(a.warmup):
                fn()
            ts = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
            out[label] = statistics.median(ts)
            out[label.replace('_ms', '_min_ms')] = min(ts)
        res['shapes'][name] = out
        if not a.json:
            print('%-14s fwd %8.2f ms (min %8.2f)  fwd+bwd %8.2f ms (min %8.2f)' % (
                name, out['fwd_ms'], out['fwd_min_ms'], out['fwdbwd_ms'], out['fwdbwd_min_ms']), flush=True)
    if a.json:
        print(json.dumps(res))


if __name__ == '__main__':
    main()
