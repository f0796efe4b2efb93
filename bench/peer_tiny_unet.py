#!/usr/bin/env python3
"""PyTorch peer of bench/tiny_unet.lua on any torch device (bench/gpu.sh runs it with --device cuda):
the tiny class-conditional DDPM UNet of ../shared/bench/torch_tiny_unet.py (its TinyUNet class,
imported from that file, so the architecture has one definition), the same batch, schedule, loss
and AdamW, timed as median of `steps` runs after `warmup`, each ending with the device's
synchronize. Prints one JSON object (and writes it to --json).

    python3 bench/peer_tiny_unet.py [--device cuda] [--batch 16] [--steps 10] [--warmup 3] [--size 32]
                                    [--threads N] [--model-file PATH] [--json out.json]
--model-file: the file holding TinyUNet; by default $CRAFT_TINY_UNET_PEER, else
../shared/bench/torch_tiny_unet.py, else build/gpu-bundle/torch_tiny_unet.py (bench/gpu.sh --pack
copies it there for machines without ../shared).
"""
import argparse
import importlib.util
import json
import os
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


def find_model_file(given):
    cands = [given, os.environ.get("CRAFT_TINY_UNET_PEER"),
             os.path.join(HERE, "..", "..", "shared", "bench", "torch_tiny_unet.py"),
             os.path.join(HERE, "..", "build", "gpu-bundle", "torch_tiny_unet.py")]
    for c in cands:
        if c and os.path.isfile(c):
            return c
    raise SystemExit("peer_tiny_unet.py: no torch_tiny_unet.py found (tried %s)" % [c for c in cands if c])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--model-file", default="")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    path = find_model_file(a.model_file)
    spec = importlib.util.spec_from_file_location("torch_tiny_unet", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def median_ms(fn, n, warmup):
        for _ in range(warmup):
            fn()
            sync()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        ts.sort()
        return ts[(n + 1) // 2 - 1] * 1e3

    torch.manual_seed(0)
    model = mod.TinyUNet().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.01)
    T, B = 1000, a.batch
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, T), 0).to(dev)
    x0 = torch.randn(B, 3, a.size, a.size).clamp(-1, 1).to(dev)
    y = torch.tensor([(k * 7) % 11 for k in range(1, B + 1)], device=dev)

    def batch():
        t = torch.randint(0, T, (B,), device=dev)
        eps = torch.randn_like(x0)
        ab = abar[t][:, None, None, None]
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t, eps

    xt, tt, _ = batch()
    res = {"torch": torch.__version__, "device": str(dev), "batch": B, "size": a.size,
           "device_name": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
           "params": sum(p.numel() for p in model.parameters()), "model_file": os.path.abspath(path)}
    model.eval()

    def infer():
        with torch.no_grad():
            model(xt, tt, y)

    res["infer_fwd_ms"] = median_ms(infer, a.steps, a.warmup)
    model.train()
    losses = []

    def step():
        xb, tb, eb = batch()
        loss = F.mse_loss(model(xb, tb, y), eb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    res["train_step_ms"] = median_ms(step, a.steps, a.warmup)
    res["loss_first_last"] = [losses[0], losses[-1]]
    if dev.type == "cuda":
        res["peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
