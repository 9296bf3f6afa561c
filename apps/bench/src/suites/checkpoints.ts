/**
 * Checkpoints: a real-size diffusers `UNet2DModel` (google/ddpm-cifar10-32's own config.json,
 * 35.7 M parameters) with seeded random weights, written as a diffusers folder and loaded by
 * `loadDiffusersModel`: load time, memory, and ms per forward pass at batch 1 and 8 on tfjs (wasm;
 * cpu with --full) and on ONNX Runtime (`exportDiffusersOnnx`, onnxruntime-node on all cores).
 * Opt-in (`--suites checkpoints`): about a minute on an idle 2-core machine.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createDiffusersModel,
  type DiffusersModel,
  parseDiffusersConfig,
  type RawTensor,
  serializeSafetensors,
  type UNet2DModel,
} from '@diffuse/models';
import { loadDiffusersModel } from '@diffuse/models/node';
import { exportDiffusersOnnx } from '@diffuse/onnx';
import * as tf from '@tensorflow/tfjs-core';
import { recordBackend, useBackend } from '../backends.js';
import { ONNX_RUNTIME, onnxAvailability } from '../onnx.js';
import type { CheckpointRow, CheckpointsSuite } from '../results.js';
import { timeIt } from '../stats.js';
import { type SuiteContext, since } from '../suite.js';

/** google/ddpm-cifar10-32's `unet/config.json` (35,746,307 parameters; diffusers' count). */
export const DDPM_CIFAR10_CONFIG = {
  _class_name: 'UNet2DModel',
  _diffusers_version: '0.0.4',
  act_fn: 'silu',
  attention_head_dim: null,
  block_out_channels: [128, 256, 256, 256],
  center_input_sample: false,
  down_block_types: ['DownBlock2D', 'AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D'],
  downsample_padding: 0,
  flip_sin_to_cos: false,
  freq_shift: 1,
  in_channels: 3,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-6,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 32,
  time_embedding_type: 'positional',
  up_block_types: ['UpBlock2D', 'UpBlock2D', 'AttnUpBlock2D', 'UpBlock2D'],
};

/** Batch sizes of the forward passes. */
export const CHECKPOINT_BATCHES = [1, 8];

/**
 * A diffusers folder with `config` and seeded random F32 weights (N(0, 0.02^2), norms at 1): the
 * checkpoint format and size of the real one, without downloading it.
 */
export async function writeRandomCheckpoint(config: object, seed: number): Promise<string> {
  const model = createDiffusersModel(parseDiffusersConfig(config));
  const tensors = new Map<string, RawTensor>();
  let s = seed >>> 0 || 1;
  const uniform = () => {
    // xorshift32: fast, seeded, good enough for random weights
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  for (const slot of model.registry.slots.values()) {
    const n = slot.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNormWeight = slot.shape.length === 1 && /norm.*\.weight$/.test(slot.name);
    for (let i = 0; i < n; i++) data[i] = isNormWeight ? 1 : (uniform() - 0.5) * 0.0693; // std 0.02
    tensors.set(slot.name, {
      dtype: 'F32',
      shape: [...slot.shape],
      data: new Uint8Array(data.buffer),
    });
  }
  model.dispose();
  const dir = await mkdtemp(join(tmpdir(), 'diffuse-checkpoint-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await writeFile(join(dir, 'diffusion_pytorch_model.safetensors'), serializeSafetensors(tensors));
  return dir;
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;

async function tfjsRows(
  backend: string,
  dir: string,
  ctx: SuiteContext,
  config: typeof DDPM_CIFAR10_CONFIG,
  batches: number[],
): Promise<CheckpointRow[]> {
  const t0 = performance.now();
  const model = (await loadDiffusersModel(dir)) as DiffusersModel;
  const loadMs = since(t0);
  const unet = model as UNet2DModel;
  const rows: CheckpointRow[] = [];
  try {
    for (const batch of batches) {
      ctx.progress.status(`checkpoints: forward on ${backend} (batch ${batch})`);
      const s = config.sample_size;
      const x = tf.randomNormal([batch, config.in_channels, s, s], 0, 1, 'float32', 1);
      const t = tf.fill([batch], 500);
      const before = tf.memory().numTensors;
      const stat = await timeIt(async () => {
        const y = unet.forward({ sample: x, timestep: t });
        await y.data();
        y.dispose();
      }, ctx.plan);
      const leaked = tf.memory().numTensors - before;
      tf.dispose([x, t]);
      rows.push({
        model: 'ddpm-cifar10-32',
        params: model.numParameters,
        backend,
        batch,
        loadMs,
        msPerCall: stat,
        modelBytes: tf.memory().numBytes,
        peakRssBytes: peakRss(),
        leakedTensors: leaked,
      });
    }
  } finally {
    model.dispose();
  }
  return rows;
}

async function ortRows(
  dir: string,
  ctx: SuiteContext,
  config: typeof DDPM_CIFAR10_CONFIG,
  batches: number[],
  threads: number,
): Promise<CheckpointRow[]> {
  const ort = await import(ONNX_RUNTIME);
  const t0 = performance.now();
  const model = (await loadDiffusersModel(dir)) as UNet2DModel;
  const params = model.numParameters;
  let bytes: Uint8Array;
  try {
    ctx.progress.status('checkpoints: exporting to ONNX');
    bytes = exportDiffusersOnnx(model);
  } finally {
    model.dispose();
  }
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const loadMs = since(t0);
  const rows: CheckpointRow[] = [];
  try {
    for (const batch of batches) {
      ctx.progress.status(`checkpoints: forward on onnx (batch ${batch})`);
      const s = config.sample_size;
      const sample = new ort.Tensor(
        'float32',
        new Float32Array(batch * config.in_channels * s * s).fill(0.1),
        [batch, config.in_channels, s, s],
      );
      const timestep = new ort.Tensor('float32', new Float32Array(batch).fill(500), [batch]);
      const stat = await timeIt(() => session.run({ sample, timestep }), ctx.plan);
      rows.push({
        model: 'ddpm-cifar10-32',
        params,
        backend: 'onnx',
        batch,
        loadMs,
        msPerCall: stat,
        modelBytes: bytes.byteLength,
        peakRssBytes: peakRss(),
        leakedTensors: 0,
        runtime: { name: ONNX_RUNTIME, threads },
      });
    }
  } finally {
    await session.release();
  }
  return rows;
}

export async function runCheckpoints(
  ctx: SuiteContext,
  config = DDPM_CIFAR10_CONFIG,
  batches = CHECKPOINT_BATCHES,
): Promise<CheckpointsSuite> {
  const t0 = performance.now();
  const { plan, progress } = ctx;
  const rows: CheckpointRow[] = [];
  const notes: string[] = [
    `${config._class_name} with google/ddpm-cifar10-32's config.json and seeded random F32 weights, written as a diffusers folder; load = loadDiffusersModel (read, parse, validate, convert) or, for onnx, that plus exportDiffusersOnnx and session creation; peak RSS is the process's (process.resourceUsage().maxRSS) after the row`,
  ];
  const backends = plan.backends.filter(
    (b): b is 'wasm' | 'cpu' | 'onnx' =>
      b === 'wasm' || b === 'onnx' || (b === 'cpu' && plan.preset === 'full'),
  );
  if (plan.backends.includes('cpu') && plan.preset !== 'full')
    notes.push(
      'cpu: only with --full (a 35.7M-parameter forward pass takes tens of seconds there)',
    );
  progress.plan(backends.length);
  const dir = await writeRandomCheckpoint(config, plan.seed);
  try {
    for (const backend of backends) {
      try {
        if (backend === 'onnx') {
          const ort = onnxAvailability();
          if (!ort.ok) {
            notes.push(`onnx: ${ort.reason}`);
            continue;
          }
          const tfSide = await useBackend('wasm'); // the export traces the tfjs model
          recordBackend(ctx.backends, tfSide);
          rows.push(...(await ortRows(dir, ctx, config, batches, ort.threads)));
        } else {
          const rec = await useBackend(backend);
          recordBackend(ctx.backends, rec);
          if (!rec.available) {
            notes.push(`${backend}: unavailable (${rec.reason})`);
            continue;
          }
          rows.push(...(await tfjsRows(backend, dir, ctx, config, batches)));
        }
      } catch (e) {
        notes.push(`${backend} failed: ${(e as Error).message}`);
      } finally {
        progress.tick();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const status =
    backends.length === 0
      ? 'skipped'
      : rows.length === 0
        ? 'failed'
        : rows.length < backends.length * batches.length
          ? 'partial'
          : 'ok';
  return { status, notes, durationMs: since(t0), rows };
}
