#!/usr/bin/env python3
"""PyTorch CPU peer of the Diffuse benchmark app.

Reads a JSON job on stdin (written by apps/bench/src/suites/peers.ts), builds the same networks as
the app measures (same layer widths, channels and activations, so the same parameter count), times
forward passes and Adam steps exactly as the app does (median of `repeats` after `warmup`), and
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
from torch import nn


def time_embedding(log_snr, freqs):
    phase = log_snr.reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)


class MLP(nn.Module):
    """[x, sin/cos(logSNR * f)] -> hidden x (Linear, SiLU) -> Linear d: the app's MLP denoiser."""

    def __init__(self, spec):
        super().__init__()
        d, hidden, embed = spec["dataDim"], spec["hidden"], spec["embedDim"]
        self.register_buffer("freqs", torch.exp(torch.linspace(math.log(0.05), math.log(20), embed // 2)))
        widths = [d + embed] + list(hidden) + [d]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x, log_snr):
        h = torch.cat([x, time_embedding(log_snr, self.freqs)], dim=1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i + 1 < len(self.layers):
                h = torch.nn.functional.silu(h)
        return h


def build(task):
    spec = task["spec"]
    if spec.get("kind") == "mlp":
        return MLP(spec), [spec["dataDim"]]
    if spec.get("kind") == "unet":
        from unet import UNet  # noqa: E402  (kept beside this file)

        model = UNet(spec)
        return model, list(spec["dataShape"])
    raise ValueError(f"unknown model spec kind {spec.get('kind')!r}")


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
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    main()
