"""PNDMScheduler reference trajectories for every timestep_spacing, with and without PRK steps.

Runs diffusers' own PNDMScheduler (source at commit 58eb52c0, imported with the optional packages stubbed,
see ../diffusers-models-options/stubs.py; PyTorch 1.13 on CPU) under a closed-form "model" so the run replays exactly:
    model_output(x, t) = A * x + B * (t / 1000) + C      (float32, elementwise; A, B, C below)
from a fixed float32 sample X0, calling scheduler.step for every entry of scheduler.timesteps as
diffusers' PNDMPipeline does. Writes pndm.json: per case the config overrides, num_inference_steps,
diffusers' timesteps and the sample after every step (or the error diffusers raises in set_timesteps/step).

Usage: python3 generate.py OUT.json   (with diffusers' src/ at /tmp/dsrc/src, see ../diffusers-models-options/stubs.py)
"""
import json, os, sys
import numpy as np
import torch

# The same stubs as the model fixtures' generator (one copy, in ../diffusers-models-options).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'diffusers-models-options'))
import stubs  # noqa: F401,E402
from diffusers.schedulers.scheduling_pndm import PNDMScheduler

X0 = [1.0, -0.5, 0.25, 2.0, -1.5, 0.0]
A, B, C = 0.3, -0.7, 0.05
CONFIGS = [
    {},  # diffusers' defaults
    {'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'beta_end': 0.012, 'steps_offset': 1},
    {'prediction_type': 'v_prediction', 'set_alpha_to_one': True},
]
cases = []
for base in CONFIGS:
    for spacing in ('leading', 'linspace', 'trailing'):
        for skip in (True, False):
            for n in (1, 2, 3, 4, 5, 10, 25):
                cfg = dict(base, timestep_spacing=spacing, skip_prk_steps=skip)
                case = {'config': cfg, 'num_inference_steps': n}
                s = PNDMScheduler(**cfg)
                try:
                    s.set_timesteps(n)
                    x = torch.tensor(X0, dtype=torch.float32)
                    traj = []
                    for t in s.timesteps:
                        eps = A * x + B * (float(t) / 1000) + C
                        x = s.step(eps, int(t), x).prev_sample
                        traj.append([float(v) for v in x.tolist()])
                    case['timesteps'] = [int(t) for t in s.timesteps]
                    case['samples'] = traj
                except Exception as e:  # noqa: BLE001
                    case['error'] = f'{type(e).__name__}: {e}'
                cases.append(case)
json.dump({'x0': X0, 'model': {'A': A, 'B': B, 'C': C}, 'cases': cases}, open(sys.argv[1], 'w'), indent=None)
print(len(cases), 'cases;', sum('error' in c for c in cases), 'errors')
