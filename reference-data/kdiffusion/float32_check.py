"""How close k-diffusion's own dpm_adaptive comes to trajectories.json in float32 (provenance, not run by tests).

Runs k-diffusion's `sample_dpm_adaptive` (k_diffusion/sampling.py at the commit in meta.kdiffusion_commit)
under torch's default float32, with the mixture-A exact denoiser computed in float32 (README, "The model":
Cholesky solves, softmax of the log-weights), on exactly the inputs of each dpm_adaptive run in
trajectories.json (x_init, kwargs, zero noise for eta 0, bank[k] for the k-th noise request for eta 1),
and compares every callback (accepted or rejected attempt) with the float64 reference:

  sigma:  |sigma_f32 / sigma_ref - 1|
  x, denoised, final:  max |a - ref| / (1 + |ref|)   (the measure of packages/samplers' kdiffusion.test.ts)

Usage:  python3 float32_check.py <dir holding k_diffusion/sampling.py> [float32|float64|model32|rounded]
torchsde, torchdiffeq, tqdm and k_diffusion.utils are stubbed (dpm_adaptive does not use them).
"""
import json
import os
import sys
import types

import torch

root = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else 'float32'
# float32: everything in float32 (k-diffusion under torch's default float32); float64: everything in float64
# (checks this script against the reference); model32: k-diffusion in float64, the denoiser in float32 and its
# output widened (what a float32 denoiser costs with exact solver arithmetic); rounded: k-diffusion and the
# denoiser in float64, only D's output rounded to float32 (the floor for any float32 denoiser).
dtype = torch.float32 if mode == 'float32' else torch.float64
model_dtype = torch.float32 if mode in ('float32', 'model32') else torch.float64
for name in ('torchsde', 'torchdiffeq'):
    m = types.ModuleType(name)
    m.odeint = None
    sys.modules[name] = m
tq = types.ModuleType('tqdm')
tqa = types.ModuleType('tqdm.auto')


class _Bar:
    def __init__(self, *a, **k):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def update(self, *a):
        pass


tqa.tqdm = _Bar
tqa.trange = range
sys.modules['tqdm'] = tq
sys.modules['tqdm.auto'] = tqa
pkg = types.ModuleType('k_diffusion')
pkg.__path__ = [os.path.join(root, 'k_diffusion')]
sys.modules['k_diffusion'] = pkg
sys.modules['k_diffusion.utils'] = types.ModuleType('k_diffusion.utils')
import hashlib  # noqa: E402
import importlib.util  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
refs = json.load(open(os.path.join(here, 'trajectories.json')))
src = os.path.join(root, 'k_diffusion', 'sampling.py')
if hashlib.sha256(open(src, 'rb').read()).hexdigest() != refs['meta']['kdiffusion_files_sha256']['k_diffusion/sampling.py']:
    sys.exit(f'{src} is not the sampling.py of k-diffusion {refs["meta"]["kdiffusion_commit"]}')
spec = importlib.util.spec_from_file_location('k_diffusion.sampling', os.path.join(root, 'k_diffusion', 'sampling.py'))
sampling = importlib.util.module_from_spec(spec)
sys.modules['k_diffusion.sampling'] = sampling
spec.loader.exec_module(sampling)

torch.set_default_dtype(dtype)
A = refs['mixtures']['A']
w = torch.tensor(A['weights'], dtype=model_dtype)
mu = torch.tensor(A['means'], dtype=model_dtype)
S = torch.tensor(A['covs'], dtype=model_dtype)
eye = torch.eye(mu.shape[1], dtype=model_dtype)


def model(x, sigma):
    """D(x; sigma) = sum_k r_k (mu_k + S_k C_k^-1 (x - mu_k)), C_k = S_k + sigma^2 I, in the default dtype."""
    out_dtype = x.dtype
    x = x.to(model_dtype)
    s = sigma[0].to(model_dtype)
    C = S + s * s * eye
    L = torch.linalg.cholesky(C)  # K x d x d
    diff = x[:, None, :] - mu[None]  # N x K x d
    sol = torch.cholesky_solve(diff.unsqueeze(-1), L.unsqueeze(0)).squeeze(-1)  # C_k^-1 (x - mu_k)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    logits = torch.log(w) - 0.5 * (diff * sol).sum(-1) - 0.5 * logdet
    r = torch.softmax(logits, dim=1)
    post = mu[None] + torch.einsum('kij,nkj->nki', S, sol)
    D = (r[..., None] * post).sum(1)
    if mode == 'rounded':
        D = D.to(torch.float32)
    return D.to(out_dtype)


def rel(a, b):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return float(((a - b).abs() / (1 + b.abs())).max())


bank = refs['noise_banks']['A']['data']
for run in refs['runs']:
    if run['sampler'] != 'sample_dpm_adaptive':
        continue
    kw = dict(run['kwargs_resolved'])
    smin, smax = kw.pop('sigma_min'), kw.pop('sigma_max')
    x0 = torch.tensor(run['x_init'])
    calls = []

    def noise_sampler(sigma, sigma_next):
        calls.append(len(calls))
        if kw['eta']:
            return torch.tensor(bank[len(calls) - 1])
        return torch.zeros_like(x0)

    steps = []
    cb = lambda info: steps.append({k: (v.clone() if torch.is_tensor(v) else v) for k, v in info.items()})  # noqa: E731
    final, info = sampling.sample_dpm_adaptive(model, x0, smin, smax, callback=cb, disable=True,
                                               noise_sampler=noise_sampler, return_info=True, **kw)
    ref = run['steps']
    same = len(steps) == len(ref) and all(a['n_accept'] == b['n_accept'] for a, b in zip(steps, ref))
    n = min(len(steps), len(ref))
    sig = max(abs(float(a['sigma']) / b['sigma'] - 1) for a, b in zip(steps[:n], ref[:n]))
    ex = max(rel(a['x'], b['x']) for a, b in zip(steps[:n], ref[:n]))
    ed = max(rel(a['denoised'], b['denoised']) for a, b in zip(steps[:n], ref[:n]))
    eh = max(abs(a['h'] / b['h'] - 1) for a, b in zip(steps[:n], ref[:n]))
    print(f"{run['id']:32s} {mode}: attempts {len(steps)} (ref {len(ref)}), same accept/reject {same}, "
          f"sigma {sig:.2e}, h {eh:.2e}, x {ex:.2e}, denoised {ed:.2e}, final {rel(final, run['final']):.2e}")
