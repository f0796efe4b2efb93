#!/usr/bin/env python3
"""Peer of bench/bench_sd15_vae.lua: the SD 1.5 VAE decoder in diffusers (random weights, nothing
downloaded): a no-grad decode of a [batch, 4, size, size] latent to 8x the size, the first call
and the median of `steps` further calls, and the process's peak resident memory.

    python bench/peer_sd15_vae.py [--batch 1] [--size 64] [--steps 1] [--threads N] [--json out.json]
Needs torch and diffusers: `sh tools/setup.sh --bench` makes .venv-bench (PyPI's torch 2.x +
diffusers 0.27.2); bench/run.sh runs it with that venv's python.
"""
import argparse
import json
import resource
import time

import diffusers
import torch
from diffusers import AutoencoderKL

# runwayml/stable-diffusion-v1-5 vae/config.json
CONFIG = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
              layers_per_block=2, norm_num_groups=32, act_fn="silu", sample_size=512,
              down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vae = AutoencoderKL(**CONFIG).eval()
    vae.requires_grad_(False)
    z = torch.randn(a.batch, 4, a.size, a.size)
    ts = []
    with torch.no_grad():
        for _ in range(1 + a.steps):
            t0 = time.perf_counter()
            vae.decode(z).sample
            ts.append(time.perf_counter() - t0)
    rest = sorted(ts[1:])
    res = {"first_ms": ts[0] * 1e3, "decode_ms": rest[(len(rest) + 1) // 2 - 1] * 1e3,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "params": sum(p.numel() for p in vae.decoder.parameters()) + sum(p.numel() for p in vae.post_quant_conv.parameters()),
           "threads": torch.get_num_threads(), "torch": torch.__version__, "diffusers": diffusers.__version__}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
