"""diffusers' own scheduler classes on the scheduler options the real-config corpus does not cover.

Runs diffusers' scheduler sources (commit 58eb52c0, imported with the optional packages stubbed, see
../diffusers-models-options/stubs.py; PyTorch 1.13 and SciPy 1.10 on CPU, Debian packages) under a
closed-form "model" so every run replays exactly:
    model_output(x, t) = A * x + B * (t / 1000) + C      (float32, elementwise; A, B, C below)
where x is `scheduler.scale_model_input(sample, t)`, calling scheduler.step for every entry of
scheduler.timesteps as diffusers' pipelines do.

Writes options.json (see the README): per case the class, config, num_inference_steps (and mu),
diffusers' timesteps, sigmas, init_noise_sigma, the sample after every step and every noise
tensor a step drew. (generate.py makes pndm.json and classes.json the same way.)

Usage: python3 generate_options.py options.json   (with diffusers' src/ at /tmp/dsrc/src)
"""
import inspect, json, os, sys, types
import numpy as np
import torch

# The same stubs as the model fixtures' generator (one copy, in ../diffusers-models-options).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'diffusers-models-options'))
import stubs  # noqa: F401,E402
import diffusers.schedulers as S  # noqa: E402
# torchsde (DPMSolverSDE's Brownian tree) is not on Debian: a stand-in module lets the class import, its
# steps then fail, so its cases compare set_timesteps only
sys.modules.setdefault('torchsde', types.ModuleType('torchsde'))
from diffusers.schedulers.scheduling_dpmsolver_sde import DPMSolverSDEScheduler  # noqa: E402

A, B, C = 0.3, -0.7, 0.05  # as generate.py


# Start sample: shape [2, 2, 3] (batch, channels, pixels: dynamic thresholding needs batch and channel
# dimensions), the float32 values X0S times init_noise_sigma.
X0S = [[[1.0, -0.5, 0.25], [2.0, -1.5, 0.0]], [[0.75, 1.25, -2.0], [-0.25, 0.5, 1.5]]]
SEED = 20240603
SD = {'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'beta_end': 0.012}
SD_OFF = dict(SD, steps_offset=1)
PIXEL = {}  # diffusers' default linear betas 1e-4 .. 0.02
LCM = dict(SD_OFF, original_inference_steps=50, timestep_scaling=10.0, timestep_spacing='leading',
           set_alpha_to_one=True, clip_sample=False)
# Playground v2.5's scheduler_config.json (EDMDPMSolverMultistepScheduler)
PLAYGROUND = {'algorithm_type': 'dpmsolver++', 'dynamic_thresholding_ratio': 0.995, 'euler_at_final': False,
              'final_sigmas_type': 'zero', 'lower_order_final': True, 'num_train_timesteps': 1000,
              'prediction_type': 'epsilon', 'rho': 7.0, 'sample_max_value': 1.0, 'sigma_data': 0.5,
              'sigma_max': 80.0, 'sigma_min': 0.002, 'solver_order': 2, 'solver_type': 'midpoint',
              'thresholding': False}
# Stable Video Diffusion img2vid's scheduler_config.json (EulerDiscreteScheduler)
SVD = {'beta_end': 0.012, 'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False,
       'interpolation_type': 'linear', 'num_train_timesteps': 1000, 'prediction_type': 'v_prediction',
       'rescale_betas_zero_snr': False, 'set_alpha_to_one': False, 'sigma_max': 700.0, 'sigma_min': 0.002,
       'skip_prk_steps': True, 'steps_offset': 1, 'timestep_spacing': 'leading', 'timestep_type': 'continuous',
       'trained_betas': None, 'use_karras_sigmas': True}
# Wan 2.1's UniPC config (flow sigmas)
WAN = {'prediction_type': 'flow_prediction', 'use_flow_sigmas': True, 'flow_shift': 3.0,
       'num_train_timesteps': 1000, 'solver_order': 2, 'solver_type': 'bh2', 'final_sigmas_type': 'zero'}
# CogVideoX-2b's scheduler_config.json (zero terminal SNR, v-prediction, trailing)
COGVIDEOX = {'beta_end': 0.012, 'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False,
             'clip_sample_range': 1.0, 'num_train_timesteps': 1000, 'prediction_type': 'v_prediction',
             'rescale_betas_zero_snr': True, 'sample_max_value': 1.0, 'set_alpha_to_one': True,
             'snr_shift_scale': 3.0, 'steps_offset': 0, 'timestep_spacing': 'trailing', 'trained_betas': None}
THRESH = {'thresholding': True, 'dynamic_thresholding_ratio': 0.9, 'sample_max_value': 1.5}
ZSNR = {'rescale_betas_zero_snr': True, 'prediction_type': 'v_prediction', 'timestep_spacing': 'trailing'}


def option_cases():
    c = []
    add = lambda cls, cfg, ns=(1, 4, 10), **kw: c.extend(  # noqa: E731
        {'class': cls, 'config': cfg, 'num_inference_steps': n, **kw} for n in ns)
    # 1. LCMScheduler (LCM-Dreamshaper v7's config and variants)
    add('LCMScheduler', LCM, (1, 2, 4, 8))
    for extra in ({'prediction_type': 'v_prediction'}, {'prediction_type': 'sample'}, {'clip_sample': True},
                  {'timestep_scaling': 5.0, 'original_inference_steps': 20}, THRESH, ZSNR,
                  {'beta_schedule': 'squaredcos_cap_v2'}):
        add('LCMScheduler', dict(LCM, **extra), (4,))
    # EDM classes (Playground v2.5)
    add('EDMDPMSolverMultistepScheduler', PLAYGROUND, (1, 4, 10))
    for extra in ({'solver_order': 1}, {'solver_order': 3}, {'solver_type': 'heun'},
                  {'algorithm_type': 'sde-dpmsolver++'}, {'sigma_schedule': 'exponential'},
                  {'prediction_type': 'v_prediction'}, {'euler_at_final': True}, {'lower_order_final': False},
                  {'final_sigmas_type': 'sigma_min'}, {'thresholding': True, 'sample_max_value': 1.5,
                                                       'dynamic_thresholding_ratio': 0.9}):
        add('EDMDPMSolverMultistepScheduler', dict(PLAYGROUND, **extra), (10,))
    add('EDMEulerScheduler', {}, (4, 10))
    add('EDMEulerScheduler', {'sigma_schedule': 'exponential', 'prediction_type': 'v_prediction'}, (10,))
    # flow sigmas on DPM-Solver and UniPC (Sana, Wan)
    add('UniPCMultistepScheduler', WAN, (1, 4, 10))
    for extra in ({'flow_shift': 1.0}, {'flow_shift': 5.0, 'solver_order': 3}, {'solver_type': 'bh1', 'final_sigmas_type': 'sigma_min'},
                  {'final_sigmas_type': 'sigma_min'}):
        add('UniPCMultistepScheduler', dict(WAN, **extra), (10,))
    add('UniPCMultistepScheduler', dict(WAN, use_dynamic_shifting=True), (10,), mu=0.8)
    add('UniPCMultistepScheduler', dict(WAN, use_dynamic_shifting=True, time_shift_type='linear'), (10,), mu=1.3)
    add('UniPCMultistepScheduler', dict(WAN, use_dynamic_shifting=True, shift_terminal=0.1), (10,), mu=0.8)
    DPMFLOW = dict(WAN, solver_type='midpoint', algorithm_type='dpmsolver++')
    add('DPMSolverMultistepScheduler', DPMFLOW, (1, 4, 10))
    for extra in ({'flow_shift': 1.0}, {'solver_order': 3}, {'final_sigmas_type': 'sigma_min'},
                  {'algorithm_type': 'sde-dpmsolver++'}, {'euler_at_final': True}):
        add('DPMSolverMultistepScheduler', dict(DPMFLOW, **extra), (10,))
    add('DPMSolverMultistepScheduler', dict(DPMFLOW, use_dynamic_shifting=True), (10,), mu=0.8)
    for cls in ('DPMSolverSinglestepScheduler', 'DEISMultistepScheduler'):
        add(cls, {'prediction_type': 'flow_prediction', 'use_flow_sigmas': True, 'flow_shift': 3.0}, (4, 10))
    add('DPMSolverSinglestepScheduler', {'prediction_type': 'flow_prediction', 'use_flow_sigmas': True,
                                         'flow_shift': 3.0, 'solver_order': 3, 'final_sigmas_type': 'sigma_min'},
        (10,))
    # FlowMatchEulerDiscreteScheduler's sigma spacings (SD 3's shift)
    for extra in ({'use_beta_sigmas': True}, {'use_karras_sigmas': True}, {'use_exponential_sigmas': True}):
        add('FlowMatchEulerDiscreteScheduler', dict({'shift': 3.0}, **extra), (1, 4, 10))
    # Euler: SVD, timestep_spacing, interpolation_type, sigma spacings, final sigma, zero SNR
    add('EulerDiscreteScheduler', SVD, (1, 4, 10, 25))
    add('EulerDiscreteScheduler', dict(SVD, timestep_type='discrete'), (10,))
    add('EulerDiscreteScheduler', dict(SVD, prediction_type='epsilon'), (10,))
    for spacing in ('leading', 'linspace', 'trailing'):
        for extra in ({}, {'use_karras_sigmas': True}, {'interpolation_type': 'log_linear'},
                      {'use_exponential_sigmas': True}, {'use_beta_sigmas': True},
                      {'final_sigmas_type': 'sigma_min'}):
            add('EulerDiscreteScheduler', dict(SD_OFF, timestep_spacing=spacing, **extra), (1, 4, 10))
    for extra in ({'use_exponential_sigmas': True, 'sigma_min': 0.01, 'sigma_max': 50.0},
                  {'use_beta_sigmas': True, 'sigma_min': 0.01, 'sigma_max': 50.0},
                  {'use_karras_sigmas': True, 'final_sigmas_type': 'sigma_min'},
                  dict(ZSNR), dict(ZSNR, timestep_spacing='linspace'), {'prediction_type': 'sample'},
                  {'timestep_type': 'continuous', 'prediction_type': 'v_prediction', 'use_beta_sigmas': True}):
        add('EulerDiscreteScheduler', dict(SD_OFF, **extra), (10,))
    for extra in ({}, {'timestep_spacing': 'trailing'}, {'timestep_spacing': 'leading'}, ZSNR):
        add('EulerAncestralDiscreteScheduler', dict(SD_OFF, **extra), (10,))
    for cls in ('HeunDiscreteScheduler', 'LMSDiscreteScheduler', 'KDPM2DiscreteScheduler',
                'KDPM2AncestralDiscreteScheduler'):
        for extra in ({'use_exponential_sigmas': True}, {'use_beta_sigmas': True}, {'timestep_spacing': 'trailing'}):
            add(cls, dict(SD_OFF, **extra), (10,))
    # 2. options: sigma spacings and lu lambdas on the DPM-Solver family, thresholding, zero-SNR betas
    for cls in ('DPMSolverMultistepScheduler', 'DPMSolverSinglestepScheduler', 'UniPCMultistepScheduler',
                'DEISMultistepScheduler'):
        for extra in ({'use_exponential_sigmas': True}, {'use_beta_sigmas': True}, THRESH,
                      {'use_karras_sigmas': True, 'beta_schedule': 'squaredcos_cap_v2'}):
            base = SD if cls == 'DPMSolverSinglestepScheduler' else SD_OFF
            add(cls, dict(base, **extra) if 'beta_schedule' not in extra else dict(extra), (10,))
        add(cls, dict(PIXEL, **THRESH), (10,))
    for extra in ({'use_lu_lambdas': True}, {'use_lu_lambdas': True, 'beta_schedule': 'squaredcos_cap_v2'},
                  dict(THRESH, algorithm_type='dpmsolver', final_sigmas_type='sigma_min'), dict(THRESH, algorithm_type='sde-dpmsolver++'),
                  dict(THRESH, solver_order=3, prediction_type='v_prediction'),
                  dict(ZSNR), dict(ZSNR, algorithm_type='sde-dpmsolver++'),
                  {'use_exponential_sigmas': True, 'final_sigmas_type': 'sigma_min'}):
        add('DPMSolverMultistepScheduler', dict(PIXEL, **extra), (10,))
    add('UniPCMultistepScheduler', dict(PIXEL, **ZSNR), (10,))
    for cls in ('DDIMScheduler', 'DDPMScheduler'):
        add(cls, dict(PIXEL, **THRESH), (10,))
        add(cls, dict(PIXEL, **THRESH, prediction_type='v_prediction'), (10,))
        add(cls, dict(SD, **ZSNR), (4, 10))
        add(cls, dict(SD, **dict(ZSNR, timestep_spacing='leading')), (10,))
    add('DDIMScheduler', dict(SD, **ZSNR, set_alpha_to_one=False), (10,))
    # a learned variance's extra channels (DeepFloyd IF's pixel models: 3 + 3), dropped by DPM-Solver
    IF = {'beta_schedule': 'squaredcos_cap_v2', 'variance_type': 'learned_range', 'thresholding': True,
          'dynamic_thresholding_ratio': 0.95, 'sample_max_value': 1.5}
    for cls, extra in (('DPMSolverMultistepScheduler', {}),
                       ('DPMSolverMultistepScheduler', {'variance_type': 'learned'}),
                       # (not on the cosine table: the noise-prediction algorithm's x0 -> threshold -> eps round
                       # trip at its first level, alpha_bar 2.4e-9, is so ill-conditioned that diffusers' float32
                       # step is 1.3e-3 from its own float64 one; this package's is 7e-5 from it)
                       ('DPMSolverMultistepScheduler', {'algorithm_type': 'dpmsolver', 'final_sigmas_type': 'sigma_min',
                                                        'beta_schedule': 'linear'}),
                       ('DPMSolverSinglestepScheduler', {})):
        add(cls, dict(IF, **extra), (10,), shape=[2, 3, 2], learned_variance=True)
    # DeepFloyd IF-I's own DDPMScheduler config: learned_range variance from the model's extra channels
    IF_DDPM = dict(IF, clip_sample=True, clip_sample_range=1.0, timestep_spacing='leading', steps_offset=0)
    add('DDPMScheduler', IF_DDPM, (4, 10), shape=[2, 3, 2], learned_variance=True)
    add('DDPMScheduler', dict(IF_DDPM, variance_type='learned', thresholding=False), (10,), shape=[2, 3, 2],
        learned_variance='positive')
    for extra in ({'use_exponential_sigmas': True}, {'use_beta_sigmas': True}):
        add('DPMSolverSDEScheduler', dict(SD_OFF, **extra), (4, 10))
    # UniPC on the noise prediction (predict_x0 false; with final_sigmas_type 'zero' diffusers' last step
    # is NaN: its noise-form step to sigma = 0 has h = inf)
    for extra in ({}, {'solver_type': 'bh1'}, {'solver_order': 3}, {'use_karras_sigmas': True}):
        add('UniPCMultistepScheduler', dict(SD_OFF, predict_x0=False, final_sigmas_type='sigma_min', **extra),
            (1, 4, 10))
    add('CogVideoXDDIMScheduler', COGVIDEOX, (4, 10, 50))
    add('TCDScheduler', dict(SD, **ZSNR), (4, 10))
    # UniPC's respaced sigmas between the config's sigma_min / sigma_max
    for extra in ({'use_karras_sigmas': True}, {'use_exponential_sigmas': True}, {'use_beta_sigmas': True}):
        add('UniPCMultistepScheduler', dict(SD_OFF, sigma_min=0.05, sigma_max=10.0, **extra), (10,))
    add('UniPCMultistepScheduler', dict(SD_OFF, sigma_min=0.05, sigma_max=10.0, use_karras_sigmas=True,
                                        final_sigmas_type='sigma_min'), (10,))
    return c


def run_case(case):
    cls = DPMSolverSDEScheduler if case['class'] == 'DPMSolverSDEScheduler' else getattr(S, case['class'])
    mod = sys.modules[cls.__module__]
    draws = []
    orig = getattr(mod, 'randn_tensor', None)
    if orig is not None:
        def rec(*a, **k):
            z = orig(*a, **k)
            draws[-1].append(z.tolist())
            return z
        mod.randn_tensor = rec
    out = {}
    try:
        s = cls.from_config(case['config'])  # as a scheduler_config.json loads (keys it does not take ignored)
        kw = {'mu': case['mu']} if 'mu' in case else {}
        s.set_timesteps(case['num_inference_steps'], **kw)
        out.update({'timesteps': [float(t) if t.is_floating_point() else int(t) for t in s.timesteps],
               'timesteps_dtype': str(s.timesteps.dtype).replace('torch.', '')})
        if getattr(s, 'sigmas', None) is not None:
            out['sigmas'] = [float(v) for v in s.sigmas]
        # flow matching has no init_noise_sigma: its run starts from the noise itself (1 here)
        ins = getattr(s, 'init_noise_sigma', 1.0)
        out['init_noise_sigma'] = float(ins)
        takes_generator = 'generator' in inspect.signature(s.step).parameters
        g = torch.Generator().manual_seed(SEED)
        x = torch.tensor(X0S, dtype=torch.float32).reshape(case.get('shape', [2, 2, 3])) * ins
        out['x_init'] = x.tolist()
        samples = []
        for t in s.timesteps:
            draws.append([])
            xin = s.scale_model_input(x, t)
            tt = float(t)
            mo = (A * xin + B * (tt / 1000) + C).to(torch.float32)
            if case.get('learned_variance') == 'positive':  # 'learned': the variance itself, in (0, 0.5)
                mo = torch.cat([mo, 0.5 * torch.sigmoid(xin)], dim=1)
            elif case.get('learned_variance'):  # 'learned_range': values in [-1, 1]
                mo = torch.cat([mo, torch.tanh(0.5 * xin)], dim=1)
            x = s.step(mo, t, x, **({'generator': g} if takes_generator else {})).prev_sample
            samples.append(x.tolist())
        out['samples'] = samples
        out['noise_draws'] = draws
        return out
    except Exception as e:  # noqa: BLE001
        # a failure after set_timesteps keeps the timesteps and sigmas (diffusers' step-index bug with
        # repeated timesteps, e.g. Euler with sigma_max above the table's, runs past its sigmas)
        out.pop('samples', None)
        out.pop('x_init', None)
        out['trajectory_error' if 'timesteps' in out else 'error'] = f'{type(e).__name__}: {e}'
        return out
    finally:
        if orig is not None:
            mod.randn_tensor = orig


def options(out):
    cases = []
    for case in option_cases():
        case.update(run_case(case))
        if not any(case['noise_draws'] if 'noise_draws' in case else []):
            case.pop('noise_draws', None)
        cases.append(case)
    json.dump({'x0': X0S, 'model': {'A': A, 'B': B, 'C': C}, 'seed': SEED, 'cases': cases}, open(out, 'w'),
              indent=None)
    print(len(cases), 'cases;', sum('error' in c for c in cases), 'errors')
    for c in cases:
        if 'error' in c or 'trajectory_error' in c:
            print('  ', c['class'], c['config'], c['num_inference_steps'], (c.get('error') or c['trajectory_error'])[:150])


if __name__ == '__main__':
    options(sys.argv[1])
