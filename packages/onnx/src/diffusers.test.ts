/**
 * ONNX export of the diffusers reference checkpoints: ONNX Runtime (Node) gives the tfjs outputs
 * within 1e-4 of their scale, at two batch sizes of one symbolic-batch file.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from '@diffuse/backend';
import type {
  AutoencoderKL,
  DiffusersModel,
  UNet2DConditionModel,
  UNet2DModel,
} from '@diffuse/models';
import { loadDiffusersModel } from '@diffuse/models/node';
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportDiffusersOnnx } from './index.js';

const dir = (set: string, id: string) =>
  fileURLToPath(new URL(`../../../reference-data/${set}/${id}/`, import.meta.url));

beforeAll(async () => {
  await initBackend('wasm');
});

async function ortRun(
  bytes: Uint8Array,
  feeds: Record<string, tf.Tensor>,
  output: string,
): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  const inputs: Record<string, ort.Tensor> = {};
  for (const [k, t] of Object.entries(feeds))
    inputs[k] =
      t.dtype === 'int32'
        ? new ort.Tensor('int32', (await t.data()) as Int32Array, t.shape)
        : new ort.Tensor('float32', (await t.data()) as Float32Array, t.shape);
  const out = await session.run(inputs);
  await session.release();
  return out[output]!.data as Float32Array;
}

async function relErr(ours: tf.Tensor, theirs: Float32Array): Promise<number> {
  const a = await ours.data();
  expect(theirs.length).toBe(a.length);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - theirs[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return err / scale;
}

/** A Python with the `onnx` package (e.g. Debian's python3-onnx), for its checker; else undefined. */
const pythonWithOnnx = ['python3', '/usr/bin/python3'].find((py) => {
  try {
    execFileSync(py, ['-c', 'import onnx'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});

const load = async (set: string, id: string) =>
  (await loadDiffusersModel(dir(set, id))) as DiffusersModel;

describe('exportDiffusersOnnx', () => {
  it('UNet2DModel (DDPM layout, class table): ORT matches tfjs at batch 1 and 3', async () => {
    for (const id of ['unet2d-ddpm-tiny', 'unet2d-class-cond']) {
      const unet = (await load('diffusers-models', id)) as UNet2DModel;
      const bytes = exportDiffusersOnnx(unet);
      const c = unet.config;
      for (const b of [1, 3]) {
        const s = c.sample_size as number;
        const sample = tf.randomNormal([b, c.in_channels, s, s], 0, 1, 'float32', b);
        const timestep = tf.tensor1d(
          Array.from({ length: b }, (_, i) => 100 + 300 * i),
          'float32',
        );
        const classLabels = c.num_class_embeds
          ? tf.tensor1d(
              Array.from({ length: b }, (_, i) => i % 10),
              'int32',
            )
          : undefined;
        const ours = unet.forward({ sample, timestep, classLabels });
        const feeds: Record<string, tf.Tensor> = { sample, timestep };
        if (classLabels) feeds.class_labels = classLabels;
        expect(
          await relErr(ours, await ortRun(bytes, feeds, 'out_sample')),
          `${id} b=${b}`,
        ).toBeLessThan(1e-4);
        tf.dispose([sample, timestep, classLabels, ours]);
      }
      unet.dispose();
    }
  });

  it('UNet2DModel NCSN++ layout (Skip blocks: FIR depthwise convs, Fourier time): ORT matches tfjs', async () => {
    const unet = (await load('diffusers-models-options', 'unet2d-ncsnpp-tiny')) as UNet2DModel;
    const bytes = exportDiffusersOnnx(unet);
    for (const b of [1, 2]) {
      const sample = tf.randomNormal([b, 3, 8, 8], 0, 1, 'float32', 7 + b);
      const timestep = tf.tensor1d(Array.from({ length: b }, (_, i) => 0.5 + 10 * i));
      const ours = unet.forward({ sample, timestep });
      const theirs = await ortRun(bytes, { sample, timestep }, 'out_sample');
      expect(await relErr(ours, theirs), `b=${b}`).toBeLessThan(1e-4);
      tf.dispose([sample, timestep, ours]);
    }
    unet.dispose();
  });

  it('UNet2DConditionModel (SD-1.x and SDXL layouts): ORT matches tfjs', async () => {
    for (const [set, id] of [
      ['diffusers-models', 'unet2d-cond-sd1-tiny'],
      ['diffusers-models-options', 'unet2d-cond-sdxl-tiny'],
    ] as const) {
      const unet = (await load(set, id)) as UNet2DConditionModel;
      const c = unet.config;
      const bytes = exportDiffusersOnnx(unet, { tokens: 5 });
      const b = 2;
      const dim = c.cross_attention_dim as number;
      const sample = tf.randomNormal([b, c.in_channels, 8, 8], 0, 1, 'float32', 1);
      const timestep = tf.tensor1d([981, 17.5]);
      const ehs = tf.randomNormal([b, 5, dim], 0, 1, 'float32', 2);
      const feeds: Record<string, tf.Tensor> = { sample, timestep, encoder_hidden_states: ehs };
      let added: { text_embeds: tf.Tensor; time_ids: tf.Tensor } | undefined;
      if (c.addition_embed_type === 'text_time') {
        added = {
          text_embeds: tf.randomNormal([b, 10], 0, 1, 'float32', 3),
          time_ids: tf.tensor2d([
            [64, 64, 0, 0, 64, 64],
            [32, 48, 4, 2, 64, 64],
          ]),
        };
        Object.assign(feeds, added);
      }
      const ours = unet.forward({
        sample,
        timestep,
        encoderHiddenStates: ehs,
        addedCondKwargs: added,
      });
      expect(await relErr(ours, await ortRun(bytes, feeds, 'out_sample')), id).toBeLessThan(1e-4);
      tf.dispose([sample, timestep, ehs, ours, added?.text_embeds, added?.time_ids]);
      unet.dispose();
    }
  });

  it('AutoencoderKL decode and encode (moments = [mean, logvar]): ORT matches tfjs', async () => {
    const vae = (await load('diffusers-models', 'vae-kl-sd-tiny')) as AutoencoderKL;
    const z = tf.randomNormal([2, 4, 8, 8], 0, 1, 'float32', 4);
    const img = vae.decode(z);
    expect(
      await relErr(img, await ortRun(exportDiffusersOnnx(vae), { latent_sample: z }, 'sample')),
    ).toBeLessThan(1e-4);
    const x = tf.randomUniform([2, 3, 16, 16], -1, 1, 'float32', 5);
    const d = vae.encode(x);
    const moments = tf.concat([d.mean, d.logvar], 1);
    const theirs = await ortRun(
      exportDiffusersOnnx(vae, { part: 'encode' }),
      { sample: x },
      'moments',
    );
    expect(await relErr(moments, theirs)).toBeLessThan(1e-4);
    tf.dispose([z, img, x, d.mean, d.std, d.logvar, moments]);
    vae.dispose();
  });

  it.skipIf(pythonWithOnnx === undefined)(
    'the exported files pass onnx.checker.check_model(full_check=True) (strict shape inference)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'diffuse-diffusers-onnx-'));
      try {
        const files: string[] = [];
        for (const [set, id, options] of [
          ['diffusers-models', 'unet2d-class-cond', {}],
          ['diffusers-models-options', 'unet2d-ncsnpp-tiny', {}],
          ['diffusers-models', 'unet2d-cond-sd1-tiny', { tokens: 5 }],
          ['diffusers-models', 'vae-kl-sd-tiny', { part: 'encode' as const }],
        ] as const) {
          const model = await load(set, id);
          const f = join(dir, `${id}.onnx`);
          writeFileSync(f, exportDiffusersOnnx(model, options));
          model.dispose();
          files.push(f);
        }
        const script = [
          'import sys, onnx',
          'for f in sys.argv[1:]:',
          '    onnx.checker.check_model(onnx.load(f), full_check=True)',
          "print('ok')",
        ].join('\n');
        expect(
          execFileSync(pythonWithOnnx!, ['-c', script, ...files], { encoding: 'utf8' }).trim(),
        ).toBe('ok');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
