#!/usr/bin/env python3
"""Peer of bench/bench_sd15_unet.lua: the SD 1.5 UNet in diffusers (random weights, nothing
downloaded), timed the same way: median of `steps` runs after `warmup`, of a no-grad forward and
of a forward + backward to the latents with frozen weights and gradient checkpointing.

    python bench/peer_sd15_unet.py [--batch 1] [--size 64] [--steps 1] [--warmup 0] [--threads N]
                                   [--no-backward] [--no-checkpoint] [--json out.json]
                                   [--device cuda] [--tiny] [--autocast]
--autocast also times both under torch.autocast(bfloat16) (after one warm-up run each): the
torch a user would run for bf16 inference and mixed-precision training.
--device runs on that torch device (timings end with its synchronize; memory is then the device's
peak allocation); --tiny is bench_sd15_unet.lua --tiny's small config with the same block types.
Needs torch and diffusers: `sh tools/setup.sh --bench` makes .venv-bench (PyPI's torch 2.x +
diffusers 0.27.2); bench/run.sh runs it with that venv's python.
"""
import argparse
import json
import resource
import time

import diffusers
import torch
from diffusers import UNet2DConditionModel

CONFIG = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
              layers_per_block=2, attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32, norm_eps=1e-5,
              flip_sin_to_cos=True, freq_shift=0, use_linear_projection=False,
              down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
              up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_ms(fn, steps, warmup, device="cpu"):
    for _ in range(warmup):
        fn()
        sync(device)
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[(steps + 1) // 2 - 1] * 1e3


def rss_mib(device="cpu"):
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-backward", action="store_true")
    ap.add_argument("--no-checkpoint", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--autocast", action="store_true")
    a = ap.parse_args()
    cfg = dict(CONFIG)
    if a.tiny:
        cfg.update(block_out_channels=(32, 32, 64, 64), layers_per_block=1, cross_attention_dim=32)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = a.device
    unet = UNet2DConditionModel(**cfg).to(dev)
    unet.requires_grad_(False)
    x = torch.randn(a.batch, 4, a.size, a.size).to(dev)
    ctx = torch.randn(a.batch, 77, cfg["cross_attention_dim"]).to(dev)
    t = torch.full((a.batch,), 500.0).to(dev)
    res = {"params": sum(p.numel() for p in unet.parameters()), "threads": torch.get_num_threads(),
           "torch": torch.__version__, "diffusers": diffusers.__version__, "device": dev,
           "device_name": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu"}

    def fwd():
        with torch.no_grad():
            unet(x, t, encoder_hidden_states=ctx)

    dtype = torch.bfloat16
    res["forward_ms"] = median_ms(fwd, a.steps, a.warmup, dev)
    res["forward_rss_mib"] = rss_mib(dev)
    if a.autocast:
        def fwd_ac():
            with torch.autocast(device_type=dev.split(":")[0], dtype=dtype):
                fwd()
        res["forward_autocast_ms"] = median_ms(fwd_ac, a.steps, max(a.warmup, 1), dev)
    if not a.no_backward:
        if not a.no_checkpoint:
            unet.enable_gradient_checkpointing()
        unet.train()

        def fwd_bwd():
            xx = x.clone().requires_grad_(True)
            unet(xx, t, encoder_hidden_states=ctx).sample.mean().backward()
            return xx.grad

        res["forward_backward_ms"] = median_ms(fwd_bwd, a.steps, a.warmup, dev)
        res["forward_backward_rss_mib"] = rss_mib(dev)
        if a.autocast:
            def fwd_bwd_ac():
                xx = x.clone().requires_grad_(True)
                with torch.autocast(device_type=dev.split(":")[0], dtype=dtype):
                    y = unet(xx, t, encoder_hidden_states=ctx).sample
                y.float().mean().backward()
                return xx.grad
            res["forward_backward_autocast_ms"] = median_ms(fwd_bwd_ac, a.steps, max(a.warmup, 1), dev)
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
