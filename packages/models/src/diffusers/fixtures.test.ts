/**
 * The diffusers reference models of `reference-data/diffusers-models/` and
 * `reference-data/diffusers-models-options/` (random weights, made and run by diffusers itself):
 * each folder loads through `loadDiffusersModel`, and every stored case matches diffusers' float64
 * output within 1e-4 of the output's scale, on wasm and on cpu.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { assertNoLeaks, initBackend } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoencoderKL, type DiffusersModel, UNet2DConditionModel, UNet2DModel } from '../index.js';
import { loadDiffusersModel } from '../node.js';

const DATA = new URL('../../../../reference-data/', import.meta.url);
const ROOT = new URL('diffusers-models/', DATA);
const OPTIONS = new URL('diffusers-models-options/', DATA);
const rootOf = (id: string) =>
  OPTION_UNETS.includes(id) || OPTION_VAES.includes(id) ? OPTIONS : ROOT;
const folder = (id: string) => fileURLToPath(new URL(`${id}/`, rootOf(id)));

interface Stored {
  dtype: string;
  shape: number[];
  data: number[];
}
type Input = Stored | { python_int: number } | Record<string, Stored>;
interface Case {
  name: string;
  inputs: Record<string, Input>;
  outputs: Record<string, { float32: Stored; float64: Stored }>;
}
interface Io {
  num_parameters: number;
  cases: Case[];
}

const io = async (id: string): Promise<Io> =>
  JSON.parse(await readFile(new URL(`${id}/io.json`, rootOf(id)), 'utf8')) as Io;

const toTensor = (s: Stored) =>
  tf.tensor(s.data, s.shape, s.dtype === 'int64' || s.dtype === 'int32' ? 'int32' : 'float32');

/** max |a - ref| / max |ref| over the output. */
async function relError(out: tf.Tensor, ref: Stored): Promise<number> {
  expect(out.shape).toEqual(ref.shape);
  const got = await out.data();
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.data.length; i++) {
    err = Math.max(err, Math.abs(got[i]! - ref.data[i]!));
    scale = Math.max(scale, Math.abs(ref.data[i]!));
  }
  return err / scale;
}

const OPTION_UNETS = [
  'unet2d-variants',
  'unet2d-fourier',
  'unet2d-learned',
  'unet2d-cond-sdxl-tiny',
  'unet2d-cond-options',
  'unet2d-ncsnpp-tiny',
];
const UNETS = ['unet2d-ddpm-tiny', 'unet2d-class-cond', 'unet2d-cond-sd1-tiny', ...OPTION_UNETS];
const OPTION_VAES = ['vae-kl-options', 'vae-kl-attn-blocks'];
const VAES = ['vae-kl-sd-tiny', ...OPTION_VAES];
const TOL = 1e-4;

for (const backend of ['wasm', 'cpu'] as const) {
  describe(`diffusers reference models on ${backend}`, () => {
    const models = new Map<string, DiffusersModel>();
    beforeAll(async () => {
      await initBackend(backend);
      for (const id of [...UNETS, ...VAES]) models.set(id, await loadDiffusersModel(folder(id)));
    });
    afterAll(() => {
      for (const m of models.values()) m.dispose();
    });

    it('loads each folder as its class with diffusers parameter counts', async () => {
      expect(models.get('unet2d-ddpm-tiny')).toBeInstanceOf(UNet2DModel);
      expect(models.get('unet2d-class-cond')).toBeInstanceOf(UNet2DModel);
      expect(models.get('unet2d-cond-sd1-tiny')).toBeInstanceOf(UNet2DConditionModel);
      expect(models.get('vae-kl-sd-tiny')).toBeInstanceOf(AutoencoderKL);
      expect(models.get('unet2d-cond-options')).toBeInstanceOf(UNet2DConditionModel);
      expect(models.get('vae-kl-options')).toBeInstanceOf(AutoencoderKL);
      for (const [id, m] of models) expect(m.numParameters, id).toBe((await io(id)).num_parameters);
    });

    for (const id of UNETS) {
      it(`${id}: every case matches diffusers within ${TOL} of the output scale`, async () => {
        const unet = models.get(id) as UNet2DModel | UNet2DConditionModel;
        for (const c of (await io(id)).cases) {
          const inp = c.inputs;
          const sample = toTensor(inp.sample as Stored);
          const t = inp.timestep!;
          const timestep = 'python_int' in t ? (t.python_int as number) : toTensor(t as Stored);
          const opt = (k: string) => (inp[k] ? toTensor(inp[k] as Stored) : undefined);
          const classLabels = opt('class_labels');
          const encoderHiddenStates = opt('encoder_hidden_states');
          const timestepCond = opt('timestep_cond');
          const added = inp.added_cond_kwargs as Record<string, Stored> | undefined;
          const addedCondKwargs = added && {
            text_embeds: toTensor(added.text_embeds!),
            time_ids: toTensor(added.time_ids!),
          };
          const out = await assertNoLeaks(
            () =>
              unet.forward({
                sample,
                timestep,
                classLabels,
                encoderHiddenStates,
                timestepCond,
                addedCondKwargs,
              }),
            `${id} forward`,
          );
          const err = await relError(out, c.outputs.sample!.float64);
          expect(err, `${id}/${c.name}`).toBeLessThan(TOL);
          tf.dispose([
            out,
            sample,
            classLabels,
            encoderHiddenStates,
            timestepCond,
            addedCondKwargs?.text_embeds,
            addedCondKwargs?.time_ids,
          ]);
          if (typeof timestep !== 'number') timestep.dispose();
        }
      });
    }

    it(`vae-kl-sd-tiny: encode (mean, std, logvar), decode and forward match diffusers within ${TOL}`, async () => {
      const vae = models.get('vae-kl-sd-tiny') as AutoencoderKL;
      const cases = new Map((await io('vae-kl-sd-tiny')).cases.map((c) => [c.name, c]));
      const enc = cases.get('encode')!;
      const x = toTensor(enc.inputs.sample as Stored);
      const dist = vae.encode(x);
      for (const k of ['mean', 'std', 'logvar'] as const)
        expect(await relError(dist[k], enc.outputs[k]!.float64), `encode ${k}`).toBeLessThan(TOL);
      expect(await relError(dist.mean, enc.outputs.mode!.float64), 'mode').toBeLessThan(TOL);
      const dec = cases.get('decode')!;
      const z = toTensor(dec.inputs.z as Stored);
      const img = vae.decode(z);
      expect(await relError(img, dec.outputs.sample!.float64), 'decode').toBeLessThan(TOL);
      const fwd = cases.get('forward')!;
      const x2 = toTensor(fwd.inputs.sample as Stored);
      const recon = vae.forward(x2);
      expect(await relError(recon, fwd.outputs.sample!.float64), 'forward').toBeLessThan(TOL);
      tf.dispose([x, dist.mean, dist.std, dist.logvar, z, img, x2, recon]);
    });

    for (const id of OPTION_VAES) {
      it(`${id}: encode and decode match diffusers within ${TOL}`, async () => {
        const vae = models.get(id) as AutoencoderKL;
        const cases = new Map((await io(id)).cases.map((c) => [c.name, c]));
        const enc = cases.get('encode')!;
        const x = toTensor(enc.inputs.sample as Stored);
        const dist = vae.encode(x);
        for (const k of ['mean', 'std', 'logvar'] as const)
          expect(await relError(dist[k], enc.outputs[k]!.float64), `encode ${k}`).toBeLessThan(TOL);
        const dec = cases.get('decode')!;
        const z = toTensor(dec.inputs.z as Stored);
        const img = vae.decode(z);
        expect(await relError(img, dec.outputs.sample!.float64), 'decode').toBeLessThan(TOL);
        tf.dispose([x, dist.mean, dist.std, dist.logvar, z, img]);
      });
    }
  });
}
