/**
 * The `mnist` recipe's pieces: the network each `--prediction` builds, and `heldOutX0Error` (the
 * trials' yardstick) against closed forms for denoisers whose errors are known.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, Random } from '@diffuse/backend';
import type { ArrayDataset } from '@diffuse/data';
import { type NetworkDenoiser, UNet } from '@diffuse/models';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from './checkpoint.js';
import { heldOutX0Error, mnistNoise, mnistUNetConfig, mnistWeighting } from './cli/mnist.js';
import { FileCheckpointStore } from './store.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('mnist recipe', () => {
  it('--prediction picks the U-Net target and EDM preconditioning; weightings and noise by name', () => {
    expect(mnistUNetConfig(16).prediction).toBe('epsilon');
    expect(mnistUNetConfig({ channels: 16, prediction: 'v' }).prediction).toBe('v');
    const edm = mnistUNetConfig({
      channels: 8,
      prediction: 'edm',
      numResBlocks: 2,
      attention: [14],
    });
    expect(edm.prediction).toBe('x0');
    expect(edm.preconditioning).toEqual({ type: 'edm', sigmaData: 0.5 });
    expect(edm.numResBlocks).toBe(2);
    expect(edm.attentionResolutions).toEqual([14]);
    expect(mnistWeighting('edm').name).toBe('edm-0.5');
    expect(mnistWeighting('min-snr').name).toBe('min-snr-5');
    expect(mnistWeighting('epsilon').name).toBe('uniform-epsilon');
    expect(mnistNoise('edm').name).not.toBe(mnistNoise('cosine').name);
  });

  it('heldOutX0Error: mean x0^2 for a zero x0 guess; (sigma / alpha)^2 E[eps^2] for a zero epsilon guess', async () => {
    const n = 300;
    const ds: ArrayDataset = {
      x: Random.seed(1).uniformArray(n * 16, -1, 1),
      labels: Int32Array.from({ length: n }, (_, i) => i % 10),
      count: n,
      shape: [4, 4, 1],
      numClasses: 10,
    };
    let meanSq = 0;
    for (const v of ds.x) meanSq += (v * v) / ds.x.length;
    const zeros = (prediction: 'x0' | 'epsilon') =>
      ({
        prediction,
        nullLabel: 10,
        predict: (x: tf.Tensor) => tf.zerosLike(x),
      }) as unknown as NetworkDenoiser;
    const rows = await heldOutX0Error(zeros('x0'), ds, [-2, 3], 5, 64);
    for (const r of rows) {
      expect(r.withLabel).toBeCloseTo(meanSq, 6);
      expect(r.nullLabel).toBeCloseTo(meanSq, 6);
    }
    // x0_hat = x_t / alpha, so x0_hat - x0 = (sigma / alpha) eps and the error is e^-logSNR E[eps^2]
    const eps = await heldOutX0Error(zeros('epsilon'), ds, [0, 2], 5, 64);
    for (const r of eps) {
      expect(Math.abs(r.withLabel / Math.exp(-r.logSNR) - 1)).toBeLessThan(0.05);
      expect(r.nullLabel).toBeCloseTo(r.withLabel, 6);
    }
  });
});

const committed = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  'checkpoints',
  'mnist-unet-edm',
);

describe.skipIf(!existsSync(join(committed, 'checkpoint.json')))(
  'committed mnist-unet-edm checkpoint',
  () => {
    it('verifies (size, SHA-256) and holds parameters, Adam moments and EMA of the EDM recipe U-Net', async () => {
      const ckpt = await loadCheckpoint(await FileCheckpointStore.open(committed));
      expect(ckpt).not.toBeNull();
      const { manifest, tensors } = ckpt!;
      const state = manifest.state as { model: unknown; optimizer: { totalSteps: number } };
      const config = mnistUNetConfig({ channels: 16, prediction: 'edm' });
      expect(state.model).toEqual(config);
      expect(state.optimizer.totalSteps).toBe(20_000);
      const net = new UNet(config, { initialize: false });
      net.params.forEach((p, i) => {
        for (const key of [`param/${i}`, `adam/m/${i}`, `adam/v/${i}`, `ema/${i}`])
          expect(tensors.get(key)?.shape, key).toEqual(p.shape);
      });
      net.dispose();
      tf.dispose([...tensors.values()]);
    });
  },
);
