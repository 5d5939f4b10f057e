#!/usr/bin/python3
"""PyTorch side of the fine-tuning step parity test (tests/train/step-parity.test.ts).

Runs the reference recipe of MOOD / BEiT `run_class_finetuning.py` + `engine_for_finetuning.py`
(NativeScaler path, no AMP) for a few optimizer steps on a fixed batch:
  - a BEiT written here in plain PyTorch with the official parameter names, loaded from the state
    dict our model saved (so both start from the same weights),
  - parameter groups of optim_factory.get_parameter_groups (no decay for 1-D / .bias / skip list,
    LayerDecayValueAssigner with get_layer_id_for_vit),
  - torch.optim.AdamW(lr, eps, betas, weight_decay=0 at top level),
  - utils.cosine_scheduler for lr (warmup) and weight decay,
  - loss: LabelSmoothingCrossEntropy / SoftTargetCrossEntropy (+ L2-SP when asked), divided by
    update_freq, backward; on the final micro-step clip_grad_norm_ then optimizer.step().
Writes {'losses', 'grad_norms', 'model', 'grads', 'grad_min_abs', 'optimizer'} with torch.save;
grad_min_abs is each element's smallest |gradient| over the optimizer steps (as AdamW saw it, after
clipping): where it is near the gradients' rounding, the sign of an update is not determined.

usage: /usr/bin/python3 scripts/parity/finetune_step.py recipe.json
recipe: {"cases": [{"init": .pth, "images": .npy, "targets": .npy, "soft": .npy?, "out": .pth,
          "model": {...BEiT options...}, "opt": {...}}]}
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ---- BEiT (modeling_finetune.VisionTransformer layout, per-block relative position bias) ----------

class Attention(nn.Module):
    def __init__(self, dim, heads, grid, qkv_bias, rel):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = None
        n = grid * grid + 1
        if rel:
            rows = (2 * grid - 1) ** 2 + 3
            self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, heads))
            self.register_buffer("relative_position_index", torch.zeros(n, n, dtype=torch.long))
        else:
            self.relative_position_bias_table = None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        if self.relative_position_bias_table is not None:
            rel = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
            attn = attn + rel.permute(2, 0, 1).contiguous().unsqueeze(0)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N, -1))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, o, grid):
        super().__init__()
        dim = o["embed_dim"]
        self.norm1 = nn.LayerNorm(dim, eps=o["layer_norm_eps"])
        self.attn = Attention(dim, o["num_heads"], grid, o["qkv_bias"], o["use_rel_pos_bias"])
        self.norm2 = nn.LayerNorm(dim, eps=o["layer_norm_eps"])
        self.mlp = Mlp(dim, int(dim * o["mlp_ratio"]))
        if o["init_values"]:
            self.gamma_1 = nn.Parameter(torch.ones(dim))
            self.gamma_2 = nn.Parameter(torch.ones(dim))
        else:
            self.gamma_1 = None

    def forward(self, x):
        if self.gamma_1 is None:
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = x + self.gamma_1 * self.attn(self.norm1(x))
        return x + self.gamma_2 * self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, o):
        super().__init__()
        self.proj = nn.Conv2d(o["in_chans"], o["embed_dim"], o["patch_size"], o["patch_size"])

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Beit(nn.Module):
    def __init__(self, o):
        super().__init__()
        grid = o["img_size"] // o["patch_size"]
        dim = o["embed_dim"]
        self.patch_embed = PatchEmbed(o)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim)) if o["use_abs_pos_emb"] else None
        self.blocks = nn.ModuleList([Block(o, grid) for _ in range(o["depth"])])
        self.mean_pool = o["use_mean_pooling"]
        if self.mean_pool:
            self.fc_norm = nn.LayerNorm(dim, eps=o["layer_norm_eps"])
        else:
            self.norm = nn.LayerNorm(dim, eps=o["layer_norm_eps"])
        self.head = nn.Linear(dim, o["num_classes"])

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for b in self.blocks:
            x = b(x)
        f = self.fc_norm(x[:, 1:].mean(1)) if self.mean_pool else self.norm(x)[:, 0]
        return self.head(f)


# ---- the recipe -----------------------------------------------------------------------------------

def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0, warmup_steps=-1):
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_steps > 0:
        warmup_iters = warmup_steps
    warmup = np.linspace(start_warmup_value, base_value, warmup_iters) if warmup_iters > 0 else np.array([])
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    rest = np.array([final_value + 0.5 * (base_value - final_value) * (1 + math.cos(math.pi * i / (len(iters)))) for i in iters])
    return np.concatenate((warmup, rest))


def layer_id_for_vit(name, num_max_layer):
    if name in ("cls_token", "mask_token", "pos_embed"):
        return 0
    if name.startswith("patch_embed"):
        return 0
    if name.startswith("rel_pos_bias"):
        return num_max_layer - 1
    if name.startswith("blocks"):
        return int(name.split(".")[1]) + 1
    return num_max_layer - 1


def parameter_groups(model, weight_decay, skip, layer_scales):
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim == 1 or name.endswith(".bias") or name in skip:
            g, wd = "no_decay", 0.0
        else:
            g, wd = "decay", weight_decay
        scale = 1.0
        if layer_scales is not None:
            lid = layer_id_for_vit(name, len(layer_scales))
            g = "layer_%d_%s" % (lid, g)
            scale = layer_scales[lid]
        if g not in groups:
            groups[g] = {"weight_decay": wd, "params": [], "lr_scale": scale, "names": []}
        groups[g]["params"].append(p)
        groups[g]["names"].append(name)
    return list(groups.values())


def run_case(c):
    o = c["model"]
    r = c["opt"]
    dtype = torch.float64 if o.get("dtype") == "float64" else torch.float32
    model = Beit(o).to(dtype)
    init = torch.load(c["init"])
    missing, unexpected = model.load_state_dict(init, strict=True), None
    images = torch.from_numpy(np.load(c["images"])).to(dtype)
    targets = torch.from_numpy(np.load(c["targets"])).long()
    soft = torch.from_numpy(np.load(c["soft"])).to(dtype) if c.get("soft") else None
    if r.get("freeze_backbone"):
        for n, p in model.named_parameters():
            if not n.startswith("head."):
                p.requires_grad = False
    depth = o["depth"]
    skip = {"pos_embed", "cls_token"}
    if r.get("disable_weight_decay_on_rel_pos_bias"):
        for i in range(depth):
            skip.add("blocks.%d.attn.relative_position_bias_table" % i)
    ld = r.get("layer_decay", 1.0)
    scales = [ld ** (depth + 1 - i) for i in range(depth + 2)] if ld < 1.0 else None
    groups = parameter_groups(model, r["weight_decay"], skip, scales)
    names = [n for g in groups for n in g["names"]]
    for g in groups:
        del g["names"]
    opt = torch.optim.AdamW(groups, lr=r["lr"], weight_decay=0.0, eps=r["eps"], betas=tuple(r["betas"]))
    steps, uf = r["steps"], r["update_freq"]
    lr_s = cosine_scheduler(r["lr"], r["min_lr"], r["epochs"], r["steps_per_epoch"], r["warmup_epochs"], r["warmup_lr"], r.get("warmup_steps", -1))
    wd_end = r.get("weight_decay_end", r["weight_decay"])
    wd_s = cosine_scheduler(r["weight_decay"], wd_end, r["epochs"], r["steps_per_epoch"])
    pre = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    losses, norms = [], []
    gmin = {}
    b = images.shape[0] // uf
    opt.zero_grad()
    for it in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_s[it] * g["lr_scale"]
            if g["weight_decay"] > 0:
                g["weight_decay"] = wd_s[it]
        for k in range(uf):
            x, y = images[k * b:(k + 1) * b], targets[k * b:(k + 1) * b]
            out = model(x)
            if soft is not None:
                loss = torch.sum(-soft[k * b:(k + 1) * b] * F.log_softmax(out, dim=-1), dim=-1).mean()
            elif r["smoothing"] > 0:
                logp = F.log_softmax(out, dim=-1)
                nll = -logp.gather(dim=-1, index=y.unsqueeze(1)).squeeze(1)
                loss = ((1 - r["smoothing"]) * nll + r["smoothing"] * -logp.mean(dim=-1)).mean()
            else:
                loss = F.cross_entropy(out, y)
            a, be = r.get("l2_alpha", 0.0), r.get("l2_beta", 0.0)
            if a > 0 or be > 0:
                for n, p in model.named_parameters():
                    if not p.requires_grad:
                        continue
                    if n.startswith("head."):
                        loss = loss + 0.5 * be * (p ** 2).sum()
                    else:
                        loss = loss + 0.5 * a * ((p - pre[n]) ** 2).sum()
            losses.append(loss.item())
            (loss / uf).backward()
        params = [p for g in opt.param_groups for p in g["params"]]
        if r.get("clip_grad"):
            norm = torch.nn.utils.clip_grad_norm_(params, r["clip_grad"])
        else:
            norm = torch.norm(torch.stack([torch.norm(p.grad.detach(), 2) for p in params if p.grad is not None]), 2)
        norms.append(norm.item())
        for n, p in model.named_parameters():
            if p.grad is not None:
                gmin[n] = p.grad.detach().abs() if n not in gmin else torch.minimum(gmin[n], p.grad.detach().abs())
        opt.step()
        if it < steps - 1:
            opt.zero_grad()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    report = {"name": c.get("name"), "ours_loaded": False}
    if c.get("ours"):
        # Our checkpoint must load in PyTorch: the model strictly, the optimizer via AdamW.load_state_dict
        # over the same groups, and its state must equal the one PyTorch reached itself.
        ours = torch.load(c["ours"])
        m2 = Beit(o).to(dtype)
        m2.load_state_dict(ours["model"], strict=True)
        g2 = parameter_groups(m2, r["weight_decay"], skip, scales)
        for g in g2:
            del g["names"]
        o2 = torch.optim.AdamW(g2, lr=r["lr"], weight_decay=0.0, eps=r["eps"], betas=tuple(r["betas"]))
        o2.load_state_dict(ours["optimizer"])
        worst = 0.0
        mine = opt.state_dict()["state"]
        for i, st in o2.state_dict()["state"].items():
            for k in ("step", "exp_avg", "exp_avg_sq"):
                a, b = st[k].double(), mine[i][k].double()
                worst = max(worst, float((a - b).abs().max()) / max(1e-3, float(b.abs().max())))
        report.update({"ours_loaded": True, "ours_state_max_rel_diff": worst, "ours_epoch": ours["epoch"]})
    torch.save({
        "losses": torch.tensor(losses, dtype=torch.float64),
        "grad_norms": torch.tensor(norms, dtype=torch.float64),
        "model": model.state_dict(),
        "grads": grads,
        "grad_min_abs": gmin,
        "optimizer": opt.state_dict(),
        "names": names,
    }, c["out"])
    return report


def main():
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        recipe = json.load(f)
    reports = [run_case(c) for c in recipe["cases"]]
    print(json.dumps({"ok": True, "torch": torch.__version__, "cases": reports}))


if __name__ == "__main__":
    main()
