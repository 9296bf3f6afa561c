import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { Mlp, mlpConfig, parseSafetensors } from './index.js';
import { loadModelFiles, saveModelFiles } from './node.js';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('Node model files', () => {
  it('saveModelFiles writes <base>.safetensors and <base>.json (no temp files left); loadModelFiles restores it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'diffuse-models-'));
    const net = new Mlp(mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 8, numClasses: 2 }), {
      seed: 5,
    });
    await saveModelFiles(net, join(dir, 'mlp'), { steps: '0' });
    expect((await readdir(dir)).sort()).toEqual(['mlp.json', 'mlp.safetensors']);
    expect(JSON.parse(await readFile(join(dir, 'mlp.json'), 'utf8'))).toEqual(net.config);
    const file = parseSafetensors(new Uint8Array(await readFile(join(dir, 'mlp.safetensors'))));
    expect(file.metadata.steps).toBe('0');
    expect([...file.tensors.keys()].sort()).toEqual(
      net
        .namedParams()
        .map(([n]) => n)
        .sort(),
    );
    const copy = (await loadModelFiles(join(dir, 'mlp'))) as Mlp;
    const x = Random.seed(1).normal([3, 2]);
    const a = net.predict(x, { alpha: 0.5, sigma: 0.86 });
    const b = copy.predict(x, { alpha: 0.5, sigma: 0.86 });
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([x, a, b]);
    net.dispose();
    copy.dispose();
  });
});
