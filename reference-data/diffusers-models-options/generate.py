"""Reference cases for diffusers config options beyond reference-data/diffusers-models/.

Runs diffusers' own UNet2DModel / UNet2DConditionModel / AutoencoderKL (source at commit 58eb52c0, imported
with the optional hub/safetensors packages stubbed; PyTorch 1.13.1 on CPU, one thread) on small random
models and writes, per case, config.json, diffusion_pytorch_model.safetensors and io.json (inputs and
diffusers' float32 and float64 outputs), in the format of reference-data/diffusers-models/.

Usage: python3 generate.py OUT_DIR [ID ...]   (with diffusers' src/ importable, see stubs.py; IDs: only those).
"""
import json, os, struct, sys, copy
import numpy as np
import torch

import stubs  # noqa: F401  (stubs the optional packages diffusers imports)
from diffusers.models.unets.unet_2d import UNet2DModel
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
import diffusers

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# torch 1.13's baddbmm with beta=0 can read uninitialised memory (NaN); diffusers' classic attention
# passes beta=0. Compute alpha * (b1 @ b2) instead, the same product.
_baddbmm = torch.baddbmm
def _safe_baddbmm(inp, b1, b2, *, beta=1, alpha=1, out=None):
    if beta == 0:
        return alpha * torch.bmm(b1, b2)
    return _baddbmm(inp, b1, b2, beta=beta, alpha=alpha)
torch.baddbmm = _safe_baddbmm

OUT = sys.argv[1]
ONLY = set(sys.argv[2:])


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            rms = p.pow(2).mean().sqrt().item()
            std = 0.1 * rms if rms > 0 else 0.05
            p.add_(torch.randn(p.shape, generator=g) * std)


def enc(t):
    a = t.detach().cpu()
    if a.dtype == torch.float64:
        return {'dtype': 'float64', 'shape': list(a.shape), 'data': [float(x) for x in a.flatten().tolist()]}
    if a.dtype == torch.float32:
        vals = a.flatten().numpy()
        return {'dtype': 'float32', 'shape': list(a.shape), 'data': [float(repr(np.float32(x))) for x in vals]}
    return {'dtype': 'int64', 'shape': list(a.shape), 'data': [int(x) for x in a.flatten().tolist()]}


def save_safetensors(model, path):
    sd = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    header, offset, blobs = {'__metadata__': {'format': 'pt'}}, 0, []
    for k in sorted(sd):
        b = sd[k].numpy().astype('<f4').tobytes()
        header[k] = {'dtype': 'F32', 'shape': list(sd[k].shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def to64(x):
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.double()
    if isinstance(x, dict):
        return {k: to64(v) for k, v in x.items()}
    return x


def write(name, cls, kwargs, seed, cases, call):
    if ONLY and name not in ONLY:
        return
    torch.manual_seed(seed)
    model = cls(**kwargs).eval()
    perturb(model, seed + 1)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    config = dict(model.config)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items() if not k.startswith('_')}
    config['_class_name'] = cls.__name__
    config['_diffusers_version'] = diffusers.__version__
    with open(os.path.join(d, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2, sort_keys=True)
    save_safetensors(model, os.path.join(d, 'diffusion_pytorch_model.safetensors'))
    m64 = copy.deepcopy(model).double()
    out_cases = []
    for case_name, inputs in cases:
        with torch.no_grad():
            o32 = call(model, inputs)
            o64 = call(m64, to64(inputs))
        stored = {}
        for k, v in inputs.items():
            if isinstance(v, int):
                stored[k] = {'python_int': v}
            elif isinstance(v, float):
                stored[k] = {'python_float': v}
            elif isinstance(v, dict):
                stored[k] = {kk: enc(vv) for kk, vv in v.items()}
            else:
                stored[k] = enc(v)
        outs = {k: {'float32': enc(o32[k]), 'float64': enc(o64[k])} for k in o32}
        gap = max((o32[k].double() - o64[k]).abs().max().item() for k in o32)
        out_cases.append({'name': case_name, 'inputs': stored, 'outputs': outs, 'max_abs_diff_f32_vs_f64': gap,
                          'max_abs_f64': max(o64[k].abs().max().item() for k in o64)})
        print(name, case_name, 'f32-f64 gap', gap)
    io = {'fixture': name, 'class': cls.__name__, 'constructor_kwargs': kwargs,
          'num_parameters': sum(p.numel() for p in model.parameters()), 'seed': seed,
          'generation': 'torch.manual_seed(seed); cls(**constructor_kwargs); every parameter += N(0, (0.1 rms)^2) '
                        '(0.05 where all zero) from torch.Generator seed+1; inputs from numpy default_rng(seed)',
          'meta': {'torch': torch.__version__, 'diffusers': diffusers.__version__, 'diffusers_commit': '58eb52c0'},
          'cases': out_cases}
    with open(os.path.join(d, 'io.json'), 'w') as f:
        json.dump(io, f)


def unet_call(model, inputs):
    kw = dict(inputs)
    return {'sample': model(**kw).sample}


def t(rng, *shape):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))


# 1. UNet2DModel: every block variant, resnet up/downsampling, scale_shift, GELU, padding 0.
#    (class_embed_type 'timestep' is left out: diffusers' UNet2DModel fails with it in float64.)
rng = np.random.default_rng(11)
write('unet2d-variants', UNet2DModel, dict(
    sample_size=16, in_channels=2, out_channels=3, center_input_sample=True,
    flip_sin_to_cos=False, freq_shift=1, time_embedding_dim=20,
    down_block_types=('DownBlock2D', 'AttnDownBlock2D', 'ResnetDownsampleBlock2D', 'DownBlock2D'),
    up_block_types=('UpBlock2D', 'ResnetUpsampleBlock2D', 'AttnUpBlock2D', 'UpBlock2D'),
    block_out_channels=(8, 8, 16, 16), layers_per_block=1, mid_block_scale_factor=1.41421356,
    downsample_padding=0, downsample_type='resnet', upsample_type='resnet', act_fn='gelu',
    attention_head_dim=4, norm_num_groups=4, attn_norm_num_groups=2, norm_eps=1e-6,
    resnet_time_scale_shift='scale_shift'), 11,
    [('timestep_int', {'sample': t(rng, 2, 2, 16, 16), 'timestep': 37}),
     ('timestep_float_tensor', {'sample': t(rng, 2, 2, 16, 16), 'timestep': torch.tensor([0.25, 612.5])})],
    unet_call)

# 2. UNet2DModel: NCSN++-style Fourier time embedding (output divided by sigma), no mid attention, mish.
rng = np.random.default_rng(12)
write('unet2d-fourier', UNet2DModel, dict(
    sample_size=8, in_channels=1, out_channels=1, time_embedding_type='fourier',
    down_block_types=('AttnDownBlock2D', 'DownBlock2D'), up_block_types=('UpBlock2D', 'AttnUpBlock2D'),
    block_out_channels=(8, 16), layers_per_block=2, act_fn='mish', attention_head_dim=None,
    norm_num_groups=4, add_attention=False, class_embed_type='identity'), 12,
    [('sigma_tensor', {'sample': t(rng, 2, 1, 8, 8), 'timestep': torch.tensor([0.5, 7.25]),
                       'class_labels': t(rng, 2, 32)}),
     ('sigma_int', {'sample': t(rng, 2, 1, 8, 8), 'timestep': 3, 'class_labels': t(rng, 2, 32)})], unet_call)

# 3. UNet2DModel: learned timestep table, class table, no mid block.
rng = np.random.default_rng(13)
write('unet2d-learned', UNet2DModel, dict(
    sample_size=8, in_channels=3, out_channels=3, time_embedding_type='learned', num_train_timesteps=50,
    down_block_types=('DownBlock2D', 'DownBlock2D'), up_block_types=('UpBlock2D', 'UpBlock2D'),
    block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, mid_block_type=None, act_fn='relu',
    num_class_embeds=4), 13,
    [('timestep_int', {'sample': t(rng, 2, 3, 8, 8), 'timestep': 49, 'class_labels': torch.tensor([0, 3])}),
     ('timestep_tensor', {'sample': t(rng, 2, 3, 8, 8), 'timestep': torch.tensor([0, 17]),
                          'class_labels': torch.tensor([2, 1])})], unet_call)

# 4. UNet2DConditionModel, SDXL-like: linear projections, per-block heads and transformer depths, text_time.
rng = np.random.default_rng(14)
write('unet2d-cond-sdxl-tiny', UNet2DConditionModel, dict(
    sample_size=8, in_channels=4, out_channels=4,
    down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'), up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'),
    block_out_channels=(8, 16), layers_per_block=(1, 2), norm_num_groups=4, cross_attention_dim=12,
    transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4), use_linear_projection=True,
    addition_embed_type='text_time', addition_time_embed_dim=4, projection_class_embeddings_input_dim=10 + 6 * 4,
    upcast_attention=True), 14,
    [('timestep_int', {'sample': t(rng, 2, 4, 8, 8), 'timestep': 999, 'encoder_hidden_states': t(rng, 2, 7, 12),
                       'added_cond_kwargs': {'text_embeds': t(rng, 2, 10),
                                             'time_ids': torch.tensor([[64., 64, 0, 0, 64, 64], [32., 48, 4, 2, 64, 64]])}}),
     ('timestep_float', {'sample': t(rng, 2, 4, 8, 8), 'timestep': torch.tensor([10.5, 700.0]),
                         'encoder_hidden_states': t(rng, 2, 3, 12),
                         'added_cond_kwargs': {'text_embeds': t(rng, 2, 10),
                                               'time_ids': torch.tensor([[1., 2, 3, 4, 5, 6], [7., 8, 9, 10, 11, 12]])}})],
    unet_call)

# 5. UNet2DConditionModel, many options: fourier time, scale_shift, projection class embedding concatenated,
#    time_cond_proj (LCM), text_proj, only_cross_attention, Attn/Resnet blocks, odd sizes, kernels 5/1.
rng = np.random.default_rng(15)
write('unet2d-cond-options', UNet2DConditionModel, dict(
    sample_size=10, in_channels=3, out_channels=2, center_input_sample=True, flip_sin_to_cos=False, freq_shift=1,
    down_block_types=('AttnDownBlock2D', 'ResnetDownsampleBlock2D', 'CrossAttnDownBlock2D'),
    mid_block_type='UNetMidBlock2D',
    up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D', 'AttnUpBlock2D'),
    only_cross_attention=(False, False, True), block_out_channels=(8, 16, 16), layers_per_block=1,
    downsample_padding=0, mid_block_scale_factor=0.7, act_fn='silu', norm_num_groups=4, norm_eps=1e-6,
    cross_attention_dim=6, encoder_hid_dim=5, attention_head_dim=(2, 4, 8),
    class_embed_type='projection', projection_class_embeddings_input_dim=3, class_embeddings_concat=True,
    resnet_time_scale_shift='scale_shift', resnet_skip_time_act=True, resnet_out_scale_factor=1.5,
    time_embedding_type='fourier', time_embedding_dim=12, time_embedding_act_fn='silu', timestep_post_act='mish',
    time_cond_proj_dim=4, conv_in_kernel=5, conv_out_kernel=1), 15,
    [('timestep_float', {'sample': t(rng, 2, 3, 10, 10), 'timestep': torch.tensor([0.3, 2.5]),
                         'encoder_hidden_states': t(rng, 2, 4, 5), 'class_labels': t(rng, 2, 3),
                         'timestep_cond': t(rng, 2, 4)}),
     ('timestep_int', {'sample': t(rng, 2, 3, 10, 10), 'timestep': 4, 'encoder_hidden_states': t(rng, 2, 4, 5),
                       'class_labels': t(rng, 2, 3), 'timestep_cond': t(rng, 2, 4)})], unet_call)

# 6. AutoencoderKL without quant convs or mid attention, three blocks, two resnets per block.
rng = np.random.default_rng(16)
def vae_call(model, inputs):
    if 'z' in inputs:
        return {'sample': model.decode(inputs['z']).sample}
    dist = model.encode(inputs['sample']).latent_dist
    return {'mean': dist.mean, 'std': dist.std, 'logvar': dist.logvar}
write('vae-kl-options', AutoencoderKL, dict(
    in_channels=1, out_channels=2, down_block_types=('DownEncoderBlock2D',) * 3, up_block_types=('UpDecoderBlock2D',) * 3,
    block_out_channels=(8, 8, 16), layers_per_block=2, act_fn='swish', latent_channels=3, norm_num_groups=4,
    sample_size=16, scaling_factor=0.13025, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
    mid_block_add_attention=False), 16,
    [('encode', {'sample': torch.from_numpy(rng.uniform(-1, 1, (2, 1, 16, 16)).astype(np.float32))}),
     ('decode', {'z': t(rng, 2, 3, 4, 4)})], vae_call)

# 7. AutoencoderKL with attention in the encoder's and decoder's blocks (AttnDownEncoderBlock2D,
#    AttnUpDecoderBlock2D), GELU.
rng = np.random.default_rng(17)
write('vae-kl-attn-blocks', AutoencoderKL, dict(
    in_channels=3, out_channels=3, down_block_types=('DownEncoderBlock2D', 'AttnDownEncoderBlock2D'),
    up_block_types=('AttnUpDecoderBlock2D', 'UpDecoderBlock2D'), block_out_channels=(8, 16), layers_per_block=1,
    act_fn='gelu', latent_channels=4, norm_num_groups=4, sample_size=8), 17,
    [('encode', {'sample': torch.from_numpy(rng.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32))}),
     ('decode', {'z': t(rng, 2, 4, 4, 4)})], vae_call)

# 8. UNet2DModel, NCSN++-like (score-SDE VE): Fourier time embedding, SkipDownBlock2D /
#    AttnSkipDownBlock2D / AttnSkipUpBlock2D / SkipUpBlock2D (FIR resampling, the image-resolution
#    skip path), scale_shift.
rng = np.random.default_rng(18)
write('unet2d-ncsnpp-tiny', UNet2DModel, dict(
    sample_size=8, in_channels=3, out_channels=3, time_embedding_type='fourier',
    down_block_types=('SkipDownBlock2D', 'AttnSkipDownBlock2D'), up_block_types=('AttnSkipUpBlock2D', 'SkipUpBlock2D'),
    block_out_channels=(32, 32), layers_per_block=1, norm_num_groups=8, attention_head_dim=8,
    resnet_time_scale_shift='scale_shift', mid_block_scale_factor=1.41421356), 18,
    [('sigma_tensor', {'sample': t(rng, 2, 3, 8, 8), 'timestep': torch.tensor([0.3, 25.0])}),
     ('sigma_int', {'sample': t(rng, 2, 3, 8, 8), 'timestep': 5})], unet_call)
