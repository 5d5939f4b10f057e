#!/usr/bin/python3
"""One BEiT masked-image-modeling pre-training step in plain PyTorch, for parity with `mood pretrain`.

  /usr/bin/python3 scripts/parity/pretrain_step.py DIR

DIR holds config.json (model geometry, target kind, optimizer settings), state.pth (our model's
state dict), x.npy (images), mask.npy (bool [B, N]) and, for token targets, target.npy (int64 [B, N]).
The model below re-states modeling_pretrain.VisionTransformerForMaskedImageModeling (BEiT) with the
same parameter names; the loss is the reference's cross-entropy at masked positions (tokens) or a
normalised-pixel MSE at masked positions (pixels, MAE-style). One backward, then one step of
torch.optim.AdamW over the reference's parameter groups. Writes DIR/out.pth:
{loss, accuracy, keys, grads: {name: grad}, after: {name: param after the step}, rel_index: [...]}.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def rel_index(wh, ww):
    coords = torch.stack(torch.meshgrid([torch.arange(wh), torch.arange(ww)], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wh - 1
    rel[:, :, 1] += ww - 1
    rel[:, :, 0] *= 2 * ww - 1
    n = (2 * wh - 1) * (2 * ww - 1) + 3
    idx = torch.zeros((wh * ww + 1,) * 2, dtype=torch.long)
    idx[1:, 1:] = rel.sum(-1)
    idx[0, 0:] = n - 3
    idx[0:, 0] = n - 2
    idx[0, 0] = n - 1
    return idx


class RelPos(nn.Module):
    def __init__(self, g, heads):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * g - 1) ** 2 + 3, heads))
        self.register_buffer("relative_position_index", rel_index(g, g))
        self.n = g * g + 1

    def forward(self):
        t = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return t.view(self.n, self.n, -1).permute(2, 0, 1).contiguous()


class Attn(nn.Module):
    def __init__(self, c, heads, g, own_table):
        super().__init__()
        self.heads = heads
        self.scale = (c // heads) ** -0.5
        self.qkv = nn.Linear(c, 3 * c, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(c))
        self.v_bias = nn.Parameter(torch.zeros(c))
        self.own = own_table
        if own_table:  # per-block table, registered on the attention module itself as the reference
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * g - 1) ** 2 + 3, heads))
            self.register_buffer("relative_position_index", rel_index(g, g))
            self.n = g * g + 1
        self.proj = nn.Linear(c, c)

    def forward(self, x, shared):
        B, N, C = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        a = q @ k.transpose(-2, -1)
        if self.own:
            t = self.relative_position_bias_table[self.relative_position_index.view(-1)]
            a = a + t.view(self.n, self.n, -1).permute(2, 0, 1).unsqueeze(0)
        if shared is not None:
            a = a + shared.unsqueeze(0)
        a = a.softmax(-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, N, -1))


class Block(nn.Module):
    def __init__(self, c, heads, g, own_table, init_values, eps):
        super().__init__()
        if init_values > 0:
            self.gamma_1 = nn.Parameter(torch.ones(c))
            self.gamma_2 = nn.Parameter(torch.ones(c))
        else:
            self.gamma_1 = self.gamma_2 = None
        self.norm1 = nn.LayerNorm(c, eps=eps)
        self.attn = Attn(c, heads, g, own_table)
        self.norm2 = nn.LayerNorm(c, eps=eps)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(c, 4 * c)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(4 * c, c)

    def forward(self, x, shared):
        a = self.attn(self.norm1(x), shared)
        x = x + (a if self.gamma_1 is None else self.gamma_1 * a)
        m = self.mlp(self.norm2(x))
        return x + (m if self.gamma_2 is None else self.gamma_2 * m)


class Mim(nn.Module):
    def __init__(self, o):
        super().__init__()
        c, p, g = o["embed_dim"], o["patch_size"], o["img_size"] // o["patch_size"]
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(o["in_chans"], c, p, p)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, g * g + 1, c)) if o["use_abs_pos_emb"] else None
        self.rel_pos_bias = RelPos(g, o["num_heads"]) if o["use_shared_rel_pos_bias"] else None
        self.blocks = nn.ModuleList([Block(c, o["num_heads"], g, o["use_rel_pos_bias"], o["init_values"], o["layer_norm_eps"])
                                     for _ in range(o["depth"])])
        self.norm = nn.LayerNorm(c, eps=o["layer_norm_eps"])
        self.lm_head = nn.Linear(c, o["head_dim"])

    def forward(self, x, m):
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        B, N, _ = t.shape
        w = m.unsqueeze(-1).type_as(t)
        t = t * (1 - w) + self.mask_token.expand(B, N, -1) * w
        t = torch.cat((self.cls_token.expand(B, -1, -1), t), 1)
        if self.pos_embed is not None:
            t = t + self.pos_embed
        shared = self.rel_pos_bias() if self.rel_pos_bias is not None else None
        for b in self.blocks:
            t = b(t, shared)
        t = self.norm(t)[:, 1:]
        return self.lm_head(t[m])


def main():
    d = sys.argv[1]
    cfg = json.load(open(os.path.join(d, "config.json")))
    o = cfg["model"]
    dtype = torch.float64 if o.get("dtype") == "float64" else torch.float32
    torch.set_num_threads(1)
    model = Mim(o).to(dtype)
    ours = torch.load(os.path.join(d, "state.pth"))
    sd = {k: v for k, v in model.state_dict().items()}
    keys = list(sd.keys())
    indices = {k: v for k, v in model.state_dict().items() if k.endswith("relative_position_index")}
    load = {}
    for k, v in model.state_dict().items():
        if k.endswith("relative_position_index"):
            continue  # ours are checked against these independently built ones
        load[k] = ours[k]
    model.load_state_dict(load, strict=False)

    x = torch.from_numpy(np.load(os.path.join(d, "x.npy"))).to(dtype)
    m = torch.from_numpy(np.load(os.path.join(d, "mask.npy"))).bool()
    model.train()
    out = model(x, m)
    acc = float("nan")
    if o["target"] == "tokens":
        labels = torch.from_numpy(np.load(os.path.join(d, "target.npy")))[m]
        out = out.float()
        loss = nn.CrossEntropyLoss()(out, labels)
        acc = (out.max(-1)[1] == labels).float().mean().item()
    else:
        p = o["patch_size"]
        B, C, H, W = x.shape
        t = x.reshape(B, C, H // p, p, W // p, p)
        t = torch.einsum("nchpwq->nhwpqc", t).reshape(B, (H // p) * (W // p), p * p * C).float()
        if o.get("norm_pix", True):
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6) ** 0.5
        loss = ((out.float() - t[m]) ** 2).mean()
    loss.backward()
    grads = {k: v.grad.detach().clone() for k, v in model.named_parameters()}

    # The reference's groups: no decay for 1-D params, *.bias, pos_embed, cls_token.
    decay, no_decay = [], []
    for k, v in model.named_parameters():
        (no_decay if v.ndim == 1 or k.endswith(".bias") or k in ("pos_embed", "cls_token") else decay).append(v)
    opt = cfg["optim"]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": opt["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                              lr=opt["lr"], betas=tuple(opt["betas"]), eps=opt["eps"])
    if opt.get("clip_grad", 0) > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), opt["clip_grad"])
    optim.step()
    after = {k: v.detach().clone() for k, v in model.named_parameters()}
    torch.save({"loss": loss.item(), "accuracy": acc, "keys": keys, "grads": grads, "after": after,
                "indices": {k: v for k, v in indices.items()}}, os.path.join(d, "out.pth"))


if __name__ == "__main__":
    main()
