#!/usr/bin/env python3
"""PyTorch CPU peer of the Diffuse benchmark app.

Reads a JSON job on stdin (written by apps/bench/src/suites/peers.ts), builds the same networks as
the app measures (same layers, channels and activations, so the same parameter count, which the app
checks), times forward passes and Adam steps as the app does (epsilon-prediction loss at t ~ U(0, 1)
under a cosine schedule; median of `repeats` after `warmup`), and
prints one JSON document on stdout. It needs only Debian's python3-torch.

Job:    {"threads": int | null, "warmup": int, "repeats": int, "seed": int,
         "tasks": [{"model": "mlp" | "unet", "task": "forward" | "train", "batch": int, "spec": {...}}]}
Output: {"torch": str, "threads": int, "python": str, "blas": str, "rows": [{"model", "task", "batch", "params", "samples": [ms]}]}
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def time_embedding(log_snr, freqs):
    phase = log_snr.reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)


class NoiseEmbedding(nn.Module):
    """@diffuse/models' embedding: fc2(silu(fc1(features(logSNR)))), features geometric from 1/16 to 8."""

    def __init__(self, dim):
        super().__init__()
        half = dim // 2
        i = torch.arange(half, dtype=torch.float32)
        self.register_buffer("freqs", torch.exp(math.log(1 / 16) + math.log(128) * i / max(1, half - 1)))
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, log_snr):
        return self.fc2(F.silu(self.fc1(time_embedding(log_snr, self.freqs))))


class MLP(nn.Module):
    """@diffuse/models' Mlp: h = in(x); h += fc2(silu(fc1(silu(h)) + emb(silu(e)))) per block; out(silu(h))."""

    def __init__(self, c):
        super().__init__()
        self.embed = NoiseEmbedding(c["embedDim"])
        self.inp = nn.Linear(c["dim"], c["width"])
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"fc1": nn.Linear(c["width"], c["width"]), "emb": nn.Linear(c["embedDim"], c["width"]),
                           "fc2": nn.Linear(c["width"], c["width"])})
            for _ in range(c["depth"]))
        self.out = nn.Linear(c["width"], c["dim"])

    def forward(self, x, log_snr):
        e = F.silu(self.embed(log_snr))
        h = self.inp(x)
        for b in self.blocks:
            h = h + b["fc2"](F.silu(b["fc1"](F.silu(h)) + b["emb"](e)))
        return self.out(F.silu(h))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(groups, cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb, cout)
        self.norm2, self.conv2 = nn.GroupNorm(groups, cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = None if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x))) + self.emb(e)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.q, self.k, self.v, self.out = (nn.Linear(c, c) for _ in range(4))

    def forward(self, x):
        b, c, hh, ww = x.shape
        t = self.norm(x).reshape(b, c, hh * ww).transpose(1, 2)
        a = torch.softmax(self.q(t) @ self.k(t).transpose(1, 2) / math.sqrt(c), dim=-1)
        o = self.out(a @ self.v(t)).transpose(1, 2).reshape(b, c, hh, ww)
        return x + o


class UNet(nn.Module):
    """@diffuse/models' UNet (DDPM/ADM layout), NCHW."""

    def __init__(self, c):
        super().__init__()
        H, _, C = c["imageShape"]
        ch0, mults, nres, g, emb = c["channels"], c["channelMults"], c["numResBlocks"], c["groups"], c["embedDim"]
        attn_res = set(c["attentionResolutions"])
        self.embed = NoiseEmbedding(emb)
        self.conv_in = nn.Conv2d(C, ch0, 3, padding=1)
        skips, ch, res = [ch0], ch0, H
        self.down = nn.ModuleList()
        for lvl, m in enumerate(mults):
            out = ch0 * m
            stages = nn.ModuleList()
            for _ in range(nres):
                stages.append(nn.ModuleList([ResBlock(ch, out, emb, g), Attention(out, g) if res in attn_res else nn.Identity()]))
                ch = out
                skips.append(ch)
            ds = None
            if lvl < len(mults) - 1:
                ds = nn.Conv2d(ch, ch, 3, stride=2, padding=1)
                skips.append(ch)
                res //= 2
            self.down.append(nn.ModuleDict({"stages": stages, **({"ds": ds} if ds is not None else {})}))
        self.mid1, self.mid_attn, self.mid2 = ResBlock(ch, ch, emb, g), Attention(ch, g), ResBlock(ch, ch, emb, g)
        self.up = nn.ModuleList()
        for lvl in reversed(range(len(mults))):
            out = ch0 * mults[lvl]
            stages = nn.ModuleList()
            for _ in range(nres + 1):
                skip = skips.pop()
                stages.append(nn.ModuleList([ResBlock(ch + skip, out, emb, g), Attention(out, g) if res in attn_res else nn.Identity()]))
                ch = out
            us = None
            if lvl > 0:
                us = nn.Conv2d(ch, ch, 3, padding=1)
                res *= 2
            self.up.append(nn.ModuleDict({"stages": stages, **({"us": us} if us is not None else {})}))
        self.norm_out = nn.GroupNorm(g, ch)
        self.conv_out = nn.Conv2d(ch, C, 3, padding=1)

    def forward(self, x, log_snr):
        e = F.silu(self.embed(log_snr))
        h = self.conv_in(x)
        hs = [h]
        for level in self.down:
            for res, attn in level["stages"]:
                h = attn(res(h, e))
                hs.append(h)
            if "ds" in level:
                h = level["ds"](h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, e)), e)
        for level in self.up:
            for res, attn in level["stages"]:
                h = attn(res(torch.cat([h, hs.pop()], dim=1), e))
            if "us" in level:
                h = level["us"](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def build(task):
    spec = task["spec"]
    kind = spec.get("kind")
    if kind == "mlp":
        return MLP(spec), [spec["dim"]]
    if kind == "unet":
        H, W, C = spec["imageShape"]
        return UNet(spec), [C, H, W]
    raise ValueError(f"unknown model spec kind {kind!r}")


def timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def run_task(task, warmup, repeats, seed):
    torch.manual_seed(seed)
    model, shape = build(task)
    batch = task["batch"]
    params = sum(p.numel() for p in model.parameters())
    x0 = torch.randn(batch, *shape)
    if task["task"] == "forward":
        model.eval()
        x = torch.randn(batch, *shape)
        log_snr = torch.full((batch,), 2 * (math.log(0.8) - math.log(0.6)))

        def step():
            with torch.no_grad():
                model(x, log_snr)
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        level_shape = (batch,) + (1,) * len(shape)

        def step():
            t = torch.rand(level_shape) * 0.998 + 0.001
            alpha, sigma = torch.cos(t * math.pi / 2), torch.sin(t * math.pi / 2)
            eps = torch.randn_like(x0)
            xt = alpha * x0 + sigma * eps
            log_snr = (2 * (torch.log(alpha) - torch.log(sigma))).reshape(batch)
            loss = torch.mean((model(xt, log_snr) - eps) ** 2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

    samples = timed(step, warmup, repeats)
    return {"model": task["model"], "task": task["task"], "batch": batch, "params": params, "samples": samples}


def main():
    job = json.load(sys.stdin)
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    rows = [run_task(t, job["warmup"], job["repeats"], job["seed"]) for t in job["tasks"]]
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "python": sys.version.split()[0],
                      "blas": loaded_blas(), "rows": rows}))


def loaded_blas():
    """The BLAS library this process loaded (Debian's torch uses whichever libblas.so.3 is selected)."""
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "blas" in line.lower() and "/" in line})
        return ", ".join(libs) if libs else "unknown"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
