#!/usr/bin/env python3
"""Loads every folder tools/make_fullsize.lua wrote with diffusers / transformers and says, per
model, whether any weight was missing, unexpected or of another shape (the check that the folders
are what those libraries would write). Exit status 1 when any is.

    python tools/check_fullsize.py DIR          # DIR: make_fullsize.lua's --out
Needs torch, diffusers and transformers: the venv `sh tools/setup.sh --bench` makes (.venv-bench).
"""
import os
import sys
import warnings

import diffusers
import torch
import transformers
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from transformers import (AutoImageProcessor, CLIPModel, CLIPTextModel, CLIPTokenizer, Dinov2Model,
                          ResNetForImageClassification)


def report(name, info, n_params):
    bad = {k: info.get(k) or [] for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
    ok = not any(bad.values())
    print(f"  {name:<32} {n_params / 1e6:8.1f} M parameters  "
          + ("ok: no missing, unexpected or mismatched keys" if ok else
             "; ".join(f"{k}: {v[:5]}{' ...' if len(v) > 5 else ''}" for k, v in bad.items() if v)))
    return ok


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    root = sys.argv[1]
    warnings.filterwarnings("ignore")
    print(f"check_fullsize: {root} with torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"transformers {transformers.__version__}")
    ok = True
    sd = os.path.join(root, "sd15")
    for cls, sub in ((UNet2DConditionModel, "unet"), (AutoencoderKL, "vae")):
        m, info = cls.from_pretrained(sd, subfolder=sub, output_loading_info=True)
        ok &= report(f"sd15/{sub} ({cls.__name__})", info, sum(p.numel() for p in m.parameters()))
        del m
    m, info = CLIPTextModel.from_pretrained(sd, subfolder="text_encoder", output_loading_info=True)
    ok &= report("sd15/text_encoder (CLIPTextModel)", info, sum(p.numel() for p in m.parameters()))
    del m
    tok = CLIPTokenizer.from_pretrained(sd, subfolder="tokenizer")
    ids = tok("a chest x-ray with an enlarged cardiac silhouette").input_ids
    print(f"  {'sd15/tokenizer (CLIPTokenizer)':<32} vocabulary {len(tok)}, ids {ids}")
    ok &= len(tok) == 49408
    # the whole pipeline, as a user would load it (scheduler and model_index.json included)
    pipe = StableDiffusionPipeline.from_pretrained(sd, safety_checker=None)
    print(f"  {'sd15 (StableDiffusionPipeline)':<32} loads: scheduler {type(pipe.scheduler).__name__}, "
          f"vae scaling factor {pipe.vae.config.scaling_factor}")
    del pipe
    for cls, sub in ((CLIPModel, "clip-vit-l14"), (Dinov2Model, "dinov2-base"),
                     (ResNetForImageClassification, "resnet-50")):
        d = os.path.join(root, sub)
        m, info = cls.from_pretrained(d, output_loading_info=True)
        ok &= report(f"{sub} ({cls.__name__})", info, sum(p.numel() for p in m.parameters()))
        proc = AutoImageProcessor.from_pretrained(d)
        print(f"  {'':<32} image processor {type(proc).__name__}")
        del m
    CLIPTokenizer.from_pretrained(os.path.join(root, "clip-vit-l14"))
    print("check_fullsize: " + ("every folder loads with no missing, unexpected or mismatched key" if ok else
                                "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
