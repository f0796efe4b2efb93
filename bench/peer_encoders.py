#!/usr/bin/env python3
"""Peer of bench/bench_encoders.lua: the same encoder shapes in transformers (random weights,
nothing downloaded), timed the same way: median of `steps` runs after `warmup`, of a no-grad
forward and of a forward + backward to the pixels with frozen weights.

    python bench/peer_encoders.py --model clip|dinov2|clip-l|dinov2-b [--batch 4] [--size 224] [--steps 3]
                                  [--warmup 1] [--threads N] [--json out.json]
Needs torch and transformers (see tests/fixtures/make_encoder_fixtures.py for a venv).
"""
import argparse
import json
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

CONFIGS = {
    "clip": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 image_size=224, patch_size=16, projection_dim=512, hidden_act="quick_gelu"),
    "dinov2": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                   image_size=518, patch_size=14, layerscale_value=1.0),
    # the reward's encoders at their real sizes: CLIP ViT-L/14 and DINOv2-B/14
    "clip-l": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                   image_size=224, patch_size=14, projection_dim=768, hidden_act="quick_gelu"),
    "dinov2-b": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, mlp_ratio=4,
                     image_size=518, patch_size=14, layerscale_value=1.0),
}


def build(name, size):
    if name.startswith("clip"):
        CONFIGS[name]["image_size"] = size   # CLIP's position table is made for the bench size
        m = CLIPVisionModelWithProjection(CLIPVisionConfig(**CONFIGS[name]))
        return m, lambda px: m(pixel_values=px).image_embeds
    m = Dinov2Model(Dinov2Config(**CONFIGS[name]))
    return m, lambda px: m(pixel_values=px).pooler_output


def median_ms(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[(steps + 1) // 2 - 1] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(CONFIGS), default="clip")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, features = build(a.model, a.size)
    model.eval().requires_grad_(False)
    px = torch.randn(a.batch, 3, a.size, a.size)
    with torch.no_grad():
        w = torch.randn(features(px).shape)

    def fwd():
        with torch.no_grad():
            features(px)

    def fwd_bwd():
        x = px.clone().requires_grad_(True)
        (features(x) * w).sum().backward()
        return x.grad

    res = {"model": a.model, "params": sum(p.numel() for p in model.parameters()),
           "forward_ms": median_ms(fwd, a.steps, a.warmup),
           "forward_backward_ms": median_ms(fwd_bwd, a.steps, a.warmup), "threads": torch.get_num_threads()}
    print(json.dumps(res))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
