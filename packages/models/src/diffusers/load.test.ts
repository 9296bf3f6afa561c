/**
 * Loading diffusers folders: F16 / BF16 weights, sharded checkpoints, `*.fp16.safetensors`
 * variants, legacy attention names, and the typed errors for configs and weights that do not fit.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createDiffusersModel,
  DEFAULT_MAX_PARAMS,
  DiffusersConfigError,
  DiffusersWeightsError,
  diffusersModelFromFiles,
  largestDiffusersActivation,
  parseDiffusersConfig,
  parseSafetensors,
  type RawTensor,
  serializeSafetensors,
  type UNet2DModel,
} from '../index.js';
import { loadDiffusersModel } from '../node.js';

const DIR = fileURLToPath(
  new URL('../../../../reference-data/diffusers-models/unet2d-class-cond/', import.meta.url),
);
let config: Record<string, unknown>;
let weights: Uint8Array;
let tensors: Map<string, RawTensor>;

beforeAll(async () => {
  await initBackend('wasm');
  config = JSON.parse(await readFile(join(DIR, 'config.json'), 'utf8'));
  weights = new Uint8Array(await readFile(join(DIR, 'diffusion_pytorch_model.safetensors')));
  tensors = parseSafetensors(weights).tensors;
});

/** IEEE half from float32 (round to nearest even), enough for normal and subnormal weights. */
function toHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    const half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  const half = (exp << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  return sign | (half + (rem > 0x1000 || (rem === 0x1000 && half & 1) ? 1 : 0));
}

/** The tensors re-encoded: `F16`, `BF16` (truncated), or F32 holding exactly those rounded values. */
function recode(dtype: 'F16' | 'BF16' | 'F32-of-F16' | 'F32-of-BF16'): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const [name, raw] of tensors) {
    const f = new Float32Array(raw.data.slice().buffer);
    const u = new Uint32Array(f.buffer);
    if (dtype === 'F16' || dtype === 'F32-of-F16') {
      const h = Uint16Array.from(f, toHalf);
      if (dtype === 'F16')
        out.set(name, { dtype: 'F16', shape: raw.shape, data: new Uint8Array(h.buffer) });
      else {
        const g = Float32Array.from(h, (b) => halfToFloat(b));
        out.set(name, { dtype: 'F32', shape: raw.shape, data: new Uint8Array(g.buffer) });
      }
    } else {
      const top = Uint16Array.from(u, (b) => b >>> 16);
      if (dtype === 'BF16')
        out.set(name, { dtype: 'BF16', shape: raw.shape, data: new Uint8Array(top.buffer) });
      else {
        const g = new Float32Array(Uint32Array.from(top, (b) => b << 16).buffer);
        out.set(name, { dtype: 'F32', shape: raw.shape, data: new Uint8Array(g.buffer) });
      }
    }
  }
  return out;
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (m / 1024);
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

async function run(model: UNet2DModel): Promise<Float32Array> {
  const sample = tf.tidy(() => tf.sin(tf.reshape(tf.range(0, 2 * 64), [2, 1, 8, 8])));
  const out = model.forward({ sample, timestep: 500, classLabels: [3, 7] });
  const data = (await out.data()) as Float32Array;
  tf.dispose([sample, out]);
  model.dispose();
  return data;
}

const fromTensors = (t: Map<string, RawTensor>, c: object = config) =>
  diffusersModelFromFiles({ config: c, weights: serializeSafetensors(t) }) as UNet2DModel;

describe('diffusers weights', () => {
  it('F16 and BF16 files give exactly the model of their float32 values', async () => {
    for (const [low, f32] of [
      ['F16', 'F32-of-F16'],
      ['BF16', 'F32-of-BF16'],
    ] as const) {
      const a = await run(fromTensors(recode(low)));
      const b = await run(fromTensors(recode(f32)));
      expect(Array.from(a)).toEqual(Array.from(b));
      const full = await run(fromTensors(tensors));
      // Rounding the weights moves the output, but not far (sanity: the conversion is not garbage).
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - full[i]!));
      expect(diff).toBeGreaterThan(0);
      expect(diff).toBeLessThan(low === 'F16' ? 5e-3 : 5e-2);
    }
  });

  it('a sharded folder (index json + shards) and an fp16-only folder load like the single file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'diffusers-shards-'));
    const names = [...tensors.keys()];
    const half = Math.floor(names.length / 2);
    const weightMap: Record<string, string> = {};
    const shards = [names.slice(0, half), names.slice(half)].map((part, i) => {
      const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      for (const n of part) weightMap[n] = file;
      return { file, bytes: serializeSafetensors(new Map(part.map((n) => [n, tensors.get(n)!]))) };
    });
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    for (const s of shards) await writeFile(join(dir, s.file), s.bytes);
    await writeFile(
      join(dir, 'diffusion_pytorch_model.safetensors.index.json'),
      JSON.stringify({ metadata: { total_size: weights.byteLength }, weight_map: weightMap }),
    );
    const single = await run((await loadDiffusersModel(DIR)) as UNet2DModel);
    expect(Array.from(await run((await loadDiffusersModel(dir)) as UNet2DModel))).toEqual(
      Array.from(single),
    );

    const fp16 = await mkdtemp(join(tmpdir(), 'diffusers-fp16-'));
    await writeFile(join(fp16, 'config.json'), JSON.stringify(config));
    await writeFile(
      join(fp16, 'diffusion_pytorch_model.fp16.safetensors'),
      serializeSafetensors(recode('F16')),
    );
    const expected = await run(fromTensors(recode('F16')));
    for (const opts of [{}, { variant: 'fp16' }])
      expect(Array.from(await run((await loadDiffusersModel(fp16, opts)) as UNet2DModel))).toEqual(
        Array.from(expected),
      );
    await expect(loadDiffusersModel(fp16, { variant: 'ema' })).rejects.toThrow(
      DiffusersWeightsError,
    );
  });

  it('legacy attention names (query/key/value/proj_attn) load as to_q/to_k/to_v/to_out.0', async () => {
    const renamed = new Map<string, RawTensor>();
    for (const [n, t] of tensors)
      renamed.set(
        n.startsWith('mid_block.attentions.0.')
          ? n
              .replace('.to_q.', '.query.')
              .replace('.to_k.', '.key.')
              .replace('.to_v.', '.value.')
              .replace('.to_out.0.', '.proj_attn.')
          : n,
        t,
      );
    expect([...renamed.keys()].some((n) => n.includes('.proj_attn.'))).toBe(true);
    expect(Array.from(await run(fromTensors(renamed)))).toEqual(
      Array.from(await run(fromTensors(tensors))),
    );
  });

  it('missing, unexpected and mis-shaped tensors are typed errors naming the key (and both shapes)', () => {
    const catchErr = (t: Map<string, RawTensor>) => {
      const before = tf.memory().numTensors;
      try {
        fromTensors(t);
      } catch (e) {
        expect(tf.memory().numTensors).toBe(before); // nothing allocated
        return e as DiffusersWeightsError;
      }
      throw new Error('expected an error');
    };
    const missing = new Map(tensors);
    missing.delete('mid_block.attentions.0.to_q.weight');
    let e = catchErr(missing);
    expect(e).toBeInstanceOf(DiffusersWeightsError);
    expect(e.key).toBe('mid_block.attentions.0.to_q.weight');
    expect(e.expected).toEqual([32, 32]);
    expect(e.message).toContain('lack');

    const extra = new Map(tensors);
    extra.set('mid_block.attentions.0.extra.weight', tensors.get('conv_in.bias')!);
    e = catchErr(extra);
    expect(e.key).toBe('mid_block.attentions.0.extra.weight');
    expect(e.message).toContain('no parameter');

    const bad = new Map(tensors);
    const raw = tensors.get('conv_in.weight')!;
    bad.set('conv_in.weight', { ...raw, shape: [16, 1, 9, 1] });
    e = catchErr(bad);
    expect(e.key).toBe('conv_in.weight');
    expect(e.expected).toEqual([16, 1, 3, 3]);
    expect(e.actual).toEqual([16, 1, 9, 1]);
    expect(e.message).toContain('[16, 1, 9, 1]');
    expect(e.message).toContain('[16, 1, 3, 3]');

    const ints = new Map(tensors);
    ints.set('conv_in.bias', { dtype: 'I32', shape: [16], data: new Uint8Array(64) });
    expect(catchErr(ints).message).toContain('dtype I32');
  });
});

describe('diffusers configs', () => {
  const err = (patch: Record<string, unknown>) => {
    try {
      fromTensors(tensors, { ...config, ...patch });
    } catch (e) {
      return e as DiffusersConfigError;
    }
    throw new Error('expected an error');
  };

  it('an option this port does not implement is a typed error naming the key and value', () => {
    const cases: [Record<string, unknown>, string, unknown][] = [
      [{ resnet_time_scale_shift: 'spatial' }, 'resnet_time_scale_shift', 'spatial'],
      [
        { down_block_types: ['KDownBlock2D', 'AttnDownBlock2D'] },
        'down_block_types[0]',
        'KDownBlock2D',
      ],
      // diffusers' Skip* blocks hard-code 3-channel skip convolutions; this fixture has 1 channel.
      [{ down_block_types: ['SkipDownBlock2D', 'AttnDownBlock2D'] }, 'in_channels', 1],
      [{ up_block_types: ['AttnUpBlock2D', 'KUpBlock2D'] }, 'up_block_types[1]', 'KUpBlock2D'],
      [{ act_fn: 'tanh' }, 'act_fn', 'tanh'],
      [{ norm_num_groups: 5 }, 'norm_num_groups', 5],
      [{ block_out_channels: [16] }, 'down_block_types', ['DownBlock2D', 'AttnDownBlock2D']],
      [{ _class_name: 'UNet3DConditionModel' }, '_class_name', 'UNet3DConditionModel'],
      [{ time_embedding_type: 'learned' }, 'num_train_timesteps', null],
    ];
    for (const [patch, key, value] of cases) {
      const e = err(patch);
      expect(e, JSON.stringify(patch)).toBeInstanceOf(DiffusersConfigError);
      expect(e.code).toBe('INVALID_MODEL_CONFIG');
      expect(e.field).toBe(key);
      expect(e.key).toBe(key);
      expect(e.value).toEqual(value);
    }
  });

  it('a config implying a larger network than the weights stops while building, before allocating', () => {
    const t0 = performance.now();
    const before = tf.memory().numTensors;
    const e = err({ layers_per_block: 1_000_000, block_out_channels: [1 << 20, 1 << 20] });
    expect(e).toBeInstanceOf(DiffusersConfigError);
    expect(e.key).toBe('maxParams');
    expect(e.message).toContain('far larger network than the weights hold');
    expect(tf.memory().numTensors).toBe(before);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('a key the class does not take is ignored with a warning, as diffusers does; strict: true throws', () => {
    const warnings: string[] = [];
    const m = diffusersModelFromFiles({
      config: { ...config, some_new_flag: true },
      weights: serializeSafetensors(tensors),
      onWarning: (w) => warnings.push(w),
    });
    expect(warnings).toEqual([
      "the config keys 'some_new_flag' are not options of UNet2DModel and are ignored (as diffusers ignores them)",
    ]);
    m.dispose();
    let e: unknown;
    try {
      diffusersModelFromFiles({
        config: { ...config, some_new_flag: true },
        weights: serializeSafetensors(tensors),
        strict: true,
      });
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(DiffusersConfigError);
    expect((e as DiffusersConfigError).key).toBe('some_new_flag');
    expect((e as DiffusersConfigError).value).toBe(true);
  });

  it('a config that changes the network is caught by the weights (mid-block attention off)', () => {
    expect(() => fromTensors(tensors, { ...config, add_attention: false })).toThrow(
      /mid_block\.attentions\.0/,
    );
  });
});

/** Stable Diffusion 1.5's `unet/config.json` and `vae/config.json` (runwayml/stable-diffusion-v1-5). */
const SD15_UNET = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: [
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'DownBlock2D',
  ],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};
const SD15_VAE = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: Array(4).fill('DownEncoderBlock2D'),
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  up_block_types: Array(4).fill('UpDecoderBlock2D'),
};

describe("diffusers size budget (the toolkit models' maxParams / maxActivationBytes)", () => {
  const build = (raw: object, options?: { maxParams?: number; maxActivationBytes?: number }) => {
    const before = tf.memory().numTensors;
    const t0 = performance.now();
    let e: unknown;
    try {
      createDiffusersModel(parseDiffusersConfig(raw, { onWarning: () => {} }), options).dispose();
    } catch (x) {
      e = x;
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(performance.now() - t0).toBeLessThan(1000);
    return e as DiffusersConfigError | undefined;
  };

  it('real configs fit the default activation budget; SD 1.5 UNet (859,520,964 parameters) needs maxParams raised', () => {
    expect(build(SD15_VAE)).toBeUndefined();
    const e = build(SD15_UNET);
    expect(e).toBeInstanceOf(DiffusersConfigError);
    expect(e!.key).toBe('maxParams');
    expect(e!.value).toBe(DEFAULT_MAX_PARAMS);
    expect(e!.message).toContain('pass a larger maxParams');
    const unet = createDiffusersModel(parseDiffusersConfig(SD15_UNET), { maxParams: 1e9 });
    expect(unet.numParameters).toBe(859_520_964);
    unet.dispose();
    // 8 heads x (64 x 64)^2 attention scores at the first level: 537 MB, under the default 1 GiB
    expect(largestDiffusersActivation(parseDiffusersConfig(SD15_UNET)).elements).toBe(
      8 * 4096 ** 2,
    );
  });

  it('a hostile config is refused from the config alone: typed error naming the key, no tensor, < 1 s', () => {
    // attention at 2048 x 2048: (2048^2)^2 scores = 70 TB per example
    const huge = build({ ...config, sample_size: 2048 });
    expect(huge).toBeInstanceOf(DiffusersConfigError);
    expect(huge!.key).toBe('sample_size');
    expect(huge!.value).toBe(2048);
    expect(huge!.message).toMatch(/over maxActivationBytes = 1073741824/);
    // a million layers: stops at the tensor limit after a few thousand shapes
    const deep = build({ ...config, layers_per_block: 1_000_000 });
    expect(deep).toBeInstanceOf(DiffusersConfigError);
    expect(deep!.key).toBe('maxParams');
    const wide = build({ ...config, block_out_channels: [1 << 20, 1 << 20] });
    expect(wide!.key).toBe('maxParams');
    // the same budget through diffusersModelFromFiles (and loadDiffusersModel), and the options raise it
    expect(() =>
      diffusersModelFromFiles({ config: { ...config, sample_size: 2048 }, weights }),
    ).toThrow(/sample_size/);
    expect(build({ ...config, sample_size: 64 }, { maxActivationBytes: 2 ** 20 })?.key).toBe(
      'sample_size',
    );
    expect(build(config, { maxParams: 1000 })?.key).toBe('maxParams');
    expect(build(config, { maxParams: -1 })?.key).toBe('maxParams');
    expect(
      build({ ...config, sample_size: 2048 }, { maxActivationBytes: 2 ** 50 }),
    ).toBeUndefined();
  });

  it('loadDiffusersModel checks the budget before reading the weights', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'diffuse-budget-'));
    await writeFile(join(folder, 'config.json'), JSON.stringify(SD15_UNET));
    // an unreadable "weights file": reaching it would be a SafetensorsError, not the budget's error
    await writeFile(join(folder, 'diffusion_pytorch_model.safetensors'), new Uint8Array(16));
    const e = await loadDiffusersModel(folder).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DiffusersConfigError);
    expect((e as DiffusersConfigError).key).toBe('maxParams');
  });
});
