"""PNDMScheduler reference trajectories for every timestep_spacing, with and without PRK steps.

Runs diffusers' own PNDMScheduler (source at commit 58eb52c0, imported with the optional packages stubbed,
see ../diffusers-models-options/stubs.py; PyTorch 1.13 on CPU) under a closed-form "model" so the run replays exactly:
    model_output(x, t) = A * x + B * (t / 1000) + C      (float32, elementwise; A, B, C below)
from a fixed float32 sample X0, calling scheduler.step for every entry of scheduler.timesteps as
diffusers' PNDMPipeline does. Writes pndm.json: per case the config overrides, num_inference_steps,
diffusers' timesteps and the sample after every step (or the error diffusers raises in set_timesteps/step).

classes.json: the same closed-form model driving the scheduler classes added later, FlowMatchHeunDiscreteScheduler
and TCDScheduler (the model output read as the flow velocity / the prediction of the config), per case the config,
num_inference_steps, step kwargs, diffusers' timesteps and sigmas (where the class has them), the sample after every
step, and every noise tensor the step drew (replayed by the tests through `step(..., { noise })`).

Usage: python3 generate.py PNDM_OUT.json [CLASSES_OUT.json]   (with diffusers' src/ at /tmp/dsrc/src, see ../diffusers-models-options/stubs.py)
"""
import json, os, sys, types
import numpy as np
import torch

# The same stubs as the model fixtures' generator (one copy, in ../diffusers-models-options).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'diffusers-models-options'))
import stubs  # noqa: F401,E402
from diffusers.schedulers.scheduling_pndm import PNDMScheduler
import diffusers.schedulers.scheduling_tcd as tcd_module
# torchsde (the Brownian tree of the SDE classes) is neither on Debian nor needed: the classes' noise
# sampler is replaced below by one that draws seeded Gaussian noise and records it, so the steps replay.
sys.modules.setdefault('torchsde', types.ModuleType('torchsde'))
import diffusers.schedulers.scheduling_cosine_dpmsolver_multistep as cosine_module
from diffusers.schedulers.scheduling_ddim_cogvideox import CogVideoXDDIMScheduler
import diffusers.schedulers.scheduling_dpmsolver_sde as sde_module
from diffusers.schedulers.scheduling_flow_match_heun_discrete import FlowMatchHeunDiscreteScheduler

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

if len(sys.argv) < 3:
    sys.exit(0)

# Every noise tensor the classes draw goes through randn_tensor of their module: record it.
drawn = []
_randn = tcd_module.randn_tensor
def recording_randn(*a, **k):
    z = _randn(*a, **k)
    drawn.append([float(v) for v in z.flatten().tolist()])
    return z
tcd_module.randn_tensor = recording_randn


class RecordingNoiseSampler:
    """Stands in for BrownianTreeNoiseSampler: noise_sampler(sigma, sigma_next) -> recorded N(0, I)."""
    def __init__(self, x, *a, **k):
        self.shape, self.gen = x.shape, torch.Generator().manual_seed(11)
    def __call__(self, sigma, sigma_next):
        z = torch.randn(self.shape, generator=self.gen)
        drawn.append([float(v) for v in z.flatten().tolist()])
        return z
cosine_module.BrownianTreeNoiseSampler = RecordingNoiseSampler
sde_module.BrownianTreeNoiseSampler = RecordingNoiseSampler


def run(cls, cfg, n, kwargs, t_scale, make=None):
    """One case: set_timesteps(n), then step through every timestep from X0 under the model
    A x + B t / t_scale + C (noise recorded per step)."""
    case = {'class': cls.__name__, 'config': cfg, 'num_inference_steps': n, 'step_kwargs': kwargs,
            't_scale': t_scale}
    try:
        s = make() if make else cls(**cfg)
        s.set_timesteps(n)
        case['timesteps'] = [float(t) for t in s.timesteps]
        if hasattr(s, 'sigmas') and cls is not tcd_module.TCDScheduler:
            case['sigmas'] = [float(v) for v in s.sigmas]
        x = torch.tensor(X0, dtype=torch.float32)
        traj, noises = [], []
        g = torch.Generator().manual_seed(7)
        for t in s.timesteps:
            out = A * x + B * (float(t) / t_scale) + C
            del drawn[:]
            extra = {'generator': g} if cls is tcd_module.TCDScheduler else {}
            x = s.step(out, t, x, **kwargs, **extra).prev_sample
            traj.append([float(v) for v in x.tolist()])
            noises.append(drawn[-1] if drawn else None)
        case['samples'] = traj
        case['noise'] = noises
    except Exception as e:  # noqa: BLE001
        case['error'] = f'{type(e).__name__}: {e}'
    return case


classes = []
for cfg in ({}, {'shift': 3.0}, {'num_train_timesteps': 500, 'shift': 1.5}):
    for n in (1, 2, 4, 10, 25):
        classes.append(run(FlowMatchHeunDiscreteScheduler, cfg, n, {}, 1000))
COSINE_CONFIGS = [
    {},  # diffusers' defaults (Stable Audio's: exponential 0.3-500, v_prediction, sigma_data 1)
    {'sigma_schedule': 'karras', 'prediction_type': 'epsilon', 'sigma_data': 0.5, 'solver_type': 'heun'},
    {'solver_order': 1, 'sigma_min': 0.002, 'sigma_max': 80.0},
    {'lower_order_final': False, 'euler_at_final': True},
]
for cfg in COSINE_CONFIGS:
    for n in (1, 2, 4, 10, 20):
        classes.append(run(cosine_module.CosineDPMSolverMultistepScheduler, cfg, n, {}, 1))
COGVIDEOX_CONFIGS = [
    {},  # diffusers' defaults: float64 scaled_linear table, SNR shift 3, leading spacing, clip_sample (unused)
    {'timestep_spacing': 'trailing', 'prediction_type': 'v_prediction', 'snr_shift_scale': 1.0, 'clip_sample': False},
    {'beta_schedule': 'linear', 'beta_start': 0.0001, 'beta_end': 0.02, 'timestep_spacing': 'linspace',
     'set_alpha_to_one': False, 'prediction_type': 'sample'},
    {'beta_schedule': 'squaredcos_cap_v2', 'steps_offset': 1, 'snr_shift_scale': 2.0},
    # CogVideoX-style: zero terminal SNR on the shifted float64 table, trailing, v-prediction
    {'rescale_betas_zero_snr': True, 'timestep_spacing': 'trailing', 'prediction_type': 'v_prediction',
     'clip_sample': False},
    {'rescale_betas_zero_snr': True, 'beta_schedule': 'linear', 'beta_start': 0.0001, 'beta_end': 0.02,
     'timestep_spacing': 'linspace', 'prediction_type': 'v_prediction', 'set_alpha_to_one': False},
]
for cfg in COGVIDEOX_CONFIGS:
    for n in (1, 4, 10, 50):
        classes.append(run(CogVideoXDDIMScheduler, cfg, n, {}, 1000))
SDE_CONFIGS = [
    {},  # diffusers' defaults: linear betas 0.00085-0.012, linspace (fractional timesteps)
    {'beta_schedule': 'scaled_linear', 'use_karras_sigmas': True, 'timestep_spacing': 'leading', 'steps_offset': 1},
    {'prediction_type': 'v_prediction', 'timestep_spacing': 'trailing'},
]
for cfg in SDE_CONFIGS:
    for n in (1, 2, 4, 10, 25):
        classes.append(run(sde_module.DPMSolverSDEScheduler, cfg, n, {}, 1000))
TCD_CONFIGS = [
    {},  # diffusers' defaults (SD-style scaled_linear table)
    {'beta_schedule': 'linear', 'beta_start': 0.0001, 'beta_end': 0.02, 'prediction_type': 'v_prediction',
     'original_inference_steps': 100, 'clip_sample': True},
    {'prediction_type': 'sample', 'set_alpha_to_one': False, 'num_train_timesteps': 500, 'original_inference_steps': 20},
    {'rescale_betas_zero_snr': True, 'prediction_type': 'v_prediction'},  # the first level has alpha = 0
]
for cfg in TCD_CONFIGS:
    for n in (1, 4, 10, 60):
        for gamma in (None, 0.0, 1.0):
            kwargs = {} if gamma is None else {'eta': gamma}
            classes.append(run(tcd_module.TCDScheduler, cfg, n, kwargs, 1000))
# Class swaps from real files (../real-configs/configs.json): Target.from_config(json.loads(raw), **overrides),
# what diffusers logged, the resolved scheduler.config, and a 10-step run as above.
import logging
logged = []
class Capture(logging.Handler):
    def emit(self, record):
        logged.append(record.getMessage())
logging.getLogger('diffusers').addHandler(Capture())
real = {c['id']: c['raw'] for c in json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'real-configs', 'configs.json')))['configs']}
SWAPS = [
    ('pndm-runwayml-stable-diffusion-v1-5', tcd_module.TCDScheduler, {}),
    ('euler-stable-diffusion-xl-base-1.0', tcd_module.TCDScheduler, {'timestep_spacing': 'trailing'}),
    ('flow-euler-stable-diffusion-3.5-large', FlowMatchHeunDiscreteScheduler, {}),
    ('pndm-runwayml-stable-diffusion-v1-5', sde_module.DPMSolverSDEScheduler, {'use_karras_sigmas': True}),
]
swaps = []
for source, cls, overrides in SWAPS:
    del logged[:]
    s = cls.from_config(json.loads(real[source]), **overrides)
    swap = {'source': source, 'class': cls.__name__, 'overrides': overrides, 'warnings': list(logged),
            'resolved_config': {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in dict(s.config).items()}}
    swap['run'] = run(cls, None, 10, {}, 1000, make=lambda: s)
    del swap['run']['config']
    swaps.append(swap)
json.dump({'x0': X0, 'model': {'A': A, 'B': B, 'C': C}, 'cases': classes, 'swaps': swaps}, open(sys.argv[2], 'w'), indent=None)
print(len(classes), 'class cases;', sum('error' in c for c in classes), 'errors;', len(swaps), 'swaps')
