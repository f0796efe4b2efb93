"""bench/flops_sd15.py: the floating-point work of one SD 1.5 UNet forward at a 64x64 latent
(512 px), batch 1, counted by torch.utils.flop_counter on diffusers' model (random weights, the
config bench/peer_sd15_unet.py builds), per operator. docs/performance.md divides it by the
measured time and by bench_gemm's measured fp32 and bf16 peaks to give each SD 1.5 figure's
share of the machine.

    .venv-bench/bin/python bench/flops_sd15.py [--size 64] [--backward]

--backward also counts a forward + backward with the gradient to the latent only (weights
frozen, as in reward finetuning), without checkpointing's recomputed forward (add one forward
for that). Needs torch >= 2.1 and diffusers (sh tools/setup.sh --bench).
"""
import argparse
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_sd15_unet import CONFIG  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--backward", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**CONFIG)
    unet.requires_grad_(False)
    x = torch.randn(1, 4, a.size, a.size, requires_grad=a.backward)
    ctx = torch.randn(1, 77, CONFIG["cross_attention_dim"])
    t = torch.full((1,), 500.0)
    with FlopCounterMode(display=False) as fc:
        if a.backward:
            unet(x, t, encoder_hidden_states=ctx).sample.mean().backward()
        else:
            with torch.no_grad():
                unet(x, t, encoder_hidden_states=ctx)
    total = fc.get_total_flops()
    what = "forward + backward (latent gradient)" if a.backward else "forward"
    print(f"SD 1.5 UNet {what}, {a.size}x{a.size} latent, batch 1: {total / 1e9:.1f} GFLOP")
    for op, n in sorted(fc.get_flop_counts()["Global"].items(), key=lambda kv: -kv[1]):
        print(f"  {str(op):60s} {n / 1e9:9.1f} GFLOP")


if __name__ == "__main__":
    main()
