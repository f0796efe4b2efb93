#!/usr/bin/env python3
"""Peer of bench/bench_craft_step.lua: one CRAFT step as a diffusers DRaFT-1 step, on the same
folders (tools/make_fullsize.lua) and the same inputs (the noise, the prompts, the probe, the
feature bank and the calibration craft used, handed over by the Lua script):

    python bench/peer_craft_step.py --models DIR --spec spec.json --inputs inputs.safetensors
                                    [--threads N] [--json out.json]

The step: prompt embeddings (no grad); DDIM (DDIMScheduler.from_config of the folder's scheduler)
with classifier-free guidance, every step but the last without a graph; the UNet with LoRA
adapters (rank r, alpha r, up weights zero) on every attention's to_q, to_k, to_v and to_out.0, and
diffusers' gradient checkpointing; the VAE decode with diffusers' gradient checkpointing of the
decoder's blocks (craft's checkpoint_vae recomputes its decoder block by block too); the reward, the
four standardised CAS dimensions computed as craft.cas does (CLIP ViT-L/14: zero-shot
log-probability over prompt sets and checklist sigmoids; DINOv2-B: a linear probe's
log-probability and the mean cosine to the k nearest bank features of the class), images
preprocessed as craft.models.clip.preprocess does (average pooling by floor(short / size), bilinear
resize, centre crop, normalisation); loss = -mean reward; backward; gradient clipping; one AdamW
update. Per phase times, the peak resident set during the step (VmHWM after clearing it once the
models are loaded) and the reward go to --json.
"""
import argparse
import json
import math
import re
import resource
import time

import diffusers
import torch
import torch.nn.functional as F
import transformers
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer, Dinov2Model


def status_mib(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\s+(\d+)", f.read()).group(1)) / 1024


def clear_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


class LoRALinear(torch.nn.Module):
    """base(x) + up(down(x)) * alpha / rank, the base frozen, up zero at the start."""

    def __init__(self, base, rank):
        super().__init__()
        self.base = base
        self.down = torch.nn.Linear(base.in_features, rank, bias=False)
        self.up = torch.nn.Linear(rank, base.out_features, bias=False)
        bound = 1 / math.sqrt(base.in_features)
        torch.nn.init.uniform_(self.down.weight, -bound, bound)
        torch.nn.init.zeros_(self.up.weight)
        self.scale = 1.0

    def forward(self, x):
        return self.base(x) + self.up(self.down(x)) * self.scale


def attach_lora(unet, rank, downs):
    """Adapters on every attention's to_q, to_k, to_v and to_out.0; their down weights taken from
    craft's (inputs "lora_down.<module name>") where given, so both steps compute the same gradient."""
    params, copied = [], 0

    def make(prefix, base):
        nonlocal copied
        lin = LoRALinear(base, rank)
        w = downs.get("lora_down." + prefix)
        if w is not None:
            with torch.no_grad():
                lin.down.weight.copy_(w)
            copied += 1
        params.extend([lin.down.weight, lin.up.weight])
        return lin

    for name, m in unet.named_modules():
        if isinstance(m, Attention):
            for sub in ("to_q", "to_k", "to_v"):
                setattr(m, sub, make(f"{name}.{sub}", getattr(m, sub)))
            m.to_out[0] = make(f"{name}.to_out.0", m.to_out[0])
    return params, copied


def preprocess(x, size, crop, mean, std):
    """craft.models.clip.preprocess: x [B, 3, H, W] in [0, 1], differentiable."""
    H, W = x.shape[2], x.shape[3]
    short, long = min(H, W), max(H, W)
    ns, nl = size, int(math.floor(size * long / short))
    oh, ow = (ns, nl) if H <= W else (nl, ns)
    if (oh, ow) != (H, W):
        k = short // size
        if k >= 2:
            x = F.avg_pool2d(x, k, k)
        if (oh, ow) != tuple(x.shape[2:]):
            x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
    top, left = (oh - crop) // 2, (ow - crop) // 2
    x = x[:, :, top:top + crop, left:left + crop]
    m = torch.tensor(mean).reshape(1, 3, 1, 1)
    s = torch.tensor(std).reshape(1, 3, 1, 1)
    return (x - m) / s


def prep_options(path):
    with open(path) as f:
        c = json.load(f)
    size = c["size"]["shortest_edge"] if isinstance(c["size"], dict) else c["size"]
    crop = c["crop_size"]["height"] if isinstance(c["crop_size"], dict) else c["crop_size"]
    return size, crop, c["image_mean"], c["image_std"]


class Reward:
    """craft.cas's reward with the recipe's default spec: sum over dimensions of (raw - mu_y) / sd_y."""

    def __init__(self, spec, inputs, clip, tok, dino, clip_prep, dino_prep):
        self.spec, self.clip, self.dino = spec, clip, dino
        self.clip_prep, self.dino_prep = clip_prep, dino_prep
        classes = spec["classes"]
        C = len(classes)

        def text(strings):
            ids = tok(strings, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
            with torch.no_grad():
                return F.normalize(clip.get_text_features(input_ids=ids), dim=-1)

        # prompt sets: set j holds the j-th prompt of every class (cycling)
        allp, start, count = [], [], []
        for c in classes:
            ps = spec["prompts"][c]
            start.append(len(allp))
            count.append(len(ps))
            allp += ps
        E = text(allp)
        J = max(count)
        self.sets = [torch.stack([E[start[c] + j % count[c]] for c in range(C)]) for j in range(J)]
        pos, neg, owner = [], [], []
        for ci, c in enumerate(classes):
            for it in spec["checklists"][c]:
                pos.append(it["pos"])
                neg.append(it["neg"])
                owner.append(ci)
        self.diff = text(pos) - text(neg)
        avg = torch.zeros(C, len(owner))
        for i, o in enumerate(owner):
            avg[o, i] = 1 / owner.count(o)
        self.avg = avg
        self.probe_w, self.probe_b = inputs["probe_weight"], inputs["probe_bias"]
        self.bank = inputs["bank_features"]
        self.bank_y = inputs["bank_labels"].long()
        self.mu, self.sd = inputs["calib_mu"], inputs["calib_sd"]
        self.C = C

    def __call__(self, images, ys):
        sp = self.spec
        Y = F.one_hot(ys, self.C).float()
        img = F.normalize(self.clip.get_image_features(pixel_values=preprocess(images, *self.clip_prep)), dim=-1)
        raw = {}
        acc = 0
        for S in self.sets:
            acc = acc + F.log_softmax(img @ S.t() / sp["temperature"]["prompt"], dim=1)
        raw["prompt"] = (acc * Y).sum(1) / len(self.sets)
        s = torch.sigmoid(img @ self.diff.t() / sp["temperature"]["checklist"])
        raw["checklist"] = (s * (Y @ self.avg)).sum(1)
        v = self.dino(pixel_values=preprocess(images, *self.dino_prep)).pooler_output
        vn = F.normalize(v, dim=-1)
        raw["probe"] = (F.log_softmax(vn @ self.probe_w.t() + self.probe_b, dim=1) * Y).sum(1)
        S = vn @ self.bank.t()
        with torch.no_grad():
            same = self.bank_y.reshape(1, -1) == ys.reshape(-1, 1)
            Sm = torch.where(same, S, torch.full_like(S, -1e4))
            W = torch.zeros_like(S)
            for i in range(len(ys)):
                keff = min(sp["k"], int(same[i].sum()))
                W[i, Sm[i].topk(keff).indices] = 1 / keff
        raw["fidelity"] = (S * W).sum(1)
        R = 0
        for i, d in enumerate(sp["dims"]):
            R = R + (raw[d] - self.mu[i][ys]) / self.sd[i][ys]
        return R


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--spec", required=True)
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--autocast", choices=("none", "sampling", "all"), default="none")
    a = ap.parse_args()
    # torch.autocast(bfloat16) as craft's precisions: 'sampling' = craft's 'bf16' (the prompt encoding
    # and the steps without a graph), 'all' = 'bf16-mixed' (the whole forward; backward follows it)
    def ac(on):
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=on)
    ac_sampling, ac_all = a.autocast != "none", a.autocast == "all"
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    with open(a.spec) as f:
        spec = json.load(f)
    inputs = load_file(a.inputs)
    sd = a.models + "/sd15"
    t0 = time.perf_counter()
    unet = UNet2DConditionModel.from_pretrained(sd, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(sd, subfolder="vae")
    te = CLIPTextModel.from_pretrained(sd, subfolder="text_encoder")
    tok = CLIPTokenizer.from_pretrained(sd, subfolder="tokenizer")
    sched = DDIMScheduler.from_pretrained(sd, subfolder="scheduler")
    clip = CLIPModel.from_pretrained(a.models + "/clip-vit-l14")
    ctok = CLIPTokenizer.from_pretrained(a.models + "/clip-vit-l14")
    dino = Dinov2Model.from_pretrained(a.models + "/dinov2-base")
    for m in (unet, vae, te, clip, dino):
        m.requires_grad_(False)
        m.eval()
    load_s = time.perf_counter() - t0
    reward = Reward(spec, inputs, clip, ctok, dino, prep_options(a.models + "/clip-vit-l14/preprocessor_config.json"),
                    prep_options(a.models + "/dinov2-base/preprocessor_config.json"))
    ph = dict(encode=0.0, sample=0.0, last=0.0, decode=0.0, reward=0.0, backward=0.0, clip=0.0, adamw=0.0)
    rss_before = status_mib("VmRSS")
    load_peak = status_mib("VmHWM")
    clear_peak()
    t_step = time.perf_counter()

    # the LoRA adapters and the optimiser (the trainer attaches them inside its step too)
    params, copied = attach_lora(unet, spec["rank"], inputs)
    unet.enable_gradient_checkpointing()
    unet.train()   # diffusers checkpoints its blocks only in training mode (no dropout in SD 1.5)
    vae.enable_gradient_checkpointing()   # the decoder's mid and up blocks, as craft's checkpoint_vae
    vae.train()
    opt = torch.optim.AdamW(params, lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["adam_eps"],
                            weight_decay=spec["weight_decay"])
    opt.zero_grad()

    t = time.perf_counter()
    with torch.no_grad(), ac(ac_sampling):
        def embed(strings):
            ids = tok(strings, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids
            return te(ids)[0]
        cond = embed(spec["picked_prompts"])
        uncond = embed([""] * len(spec["picked_prompts"]))
    ph["encode"] = time.perf_counter() - t
    context = torch.cat([uncond, cond])
    ys = torch.tensor(spec["picked_labels"])
    latents = inputs["noise"] * sched.init_noise_sigma
    sched.set_timesteps(spec["steps"])
    ts = sched.timesteps
    cfg = spec["cfg"]
    for i, tt in enumerate(ts):
        grad = i == len(ts) - 1   # K = 1
        t = time.perf_counter()
        with torch.set_grad_enabled(grad), ac(ac_all if grad else ac_sampling):
            inp = sched.scale_model_input(torch.cat([latents, latents]), tt)
            out = unet(inp, tt, encoder_hidden_states=context).sample.float()
            ph["last" if grad else "sample"] += time.perf_counter() - t
            u, c = out.chunk(2)
            latents = sched.step(u + (c - u) * cfg, tt, latents, eta=0.0).prev_sample
        if not grad:
            latents = latents.detach()

    def decode(z):
        return (vae.decode(z / vae.config.scaling_factor).sample * 0.5 + 0.5).clamp(0, 1)

    t = time.perf_counter()
    with ac(ac_all):
        images = decode(latents).float()
    ph["decode"] = time.perf_counter() - t
    t = time.perf_counter()
    with ac(ac_all):
        R = reward(images, ys).mean().float()
    ph["reward"] = time.perf_counter() - t
    loss = -R
    t = time.perf_counter()
    loss.backward()
    ph["backward"] = time.perf_counter() - t
    t = time.perf_counter()
    gn = torch.nn.utils.clip_grad_norm_(params, spec["max_grad_norm"])
    ph["clip"] = time.perf_counter() - t
    t = time.perf_counter()
    opt.step()
    ph["adamw"] = time.perf_counter() - t
    total = time.perf_counter() - t_step
    res = dict(ph)
    res.update(total=total, other=total - sum(ph.values()), reward_value=R.item(), grad_norm=float(gn),
               peak_rss_mib=status_mib("VmHWM"), rss_before_mib=rss_before, load_peak_rss_mib=load_peak,
               process_peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               load_s=load_s, torch=torch.__version__, diffusers=diffusers.__version__,
               transformers=transformers.__version__, threads=torch.get_num_threads(),
               n_lora_params=sum(p.numel() for p in params), n_adapters=len(params) // 2,
               n_down_from_craft=copied, autocast=a.autocast)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f)


if __name__ == "__main__":
    main()
