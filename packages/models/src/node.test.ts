import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { initBackend, Random } from '@diffuse/backend';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createModel,
  Mlp,
  type MlpConfig,
  ModelError,
  mlpConfig,
  parseSafetensors,
  saveModel,
  serializeSafetensors,
} from './index.js';
import { loadModelFiles, removeStaleTemporaries, saveModelFiles, writeFileAtomic } from './node.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, '..');

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
    await rm(dir, { recursive: true });
  });

  it('typed errors naming the file: truncated <base>.json, missing weights, weights without config', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'diffuse-models-'));
    const base = join(dir, 'm');
    const net = createModel(mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 8 }));
    await saveModelFiles(net, base);
    const json = await readFile(`${base}.json`, 'utf8');
    await writeFile(`${base}.json`, json.slice(0, json.length >> 1));
    const e1 = await loadModelFiles(base).catch((e) => e);
    expect(e1).toBeInstanceOf(ModelError);
    expect(e1.message).toContain(`${base}.json is not valid JSON`);
    await rm(`${base}.safetensors`);
    const e2 = await loadModelFiles(base).catch((e) => e);
    expect(e2).toBeInstanceOf(ModelError);
    expect(e2.message).toContain(`${base}.safetensors does not exist`);
    // weights without the embedded config (another tool's pair) and no JSON
    const raw = parseSafetensors((await saveModel(net)).weights);
    await writeFile(`${base}.safetensors`, serializeSafetensors(raw.tensors));
    await rm(`${base}.json`);
    const e3 = await loadModelFiles(base).catch((e) => e);
    expect(e3).toBeInstanceOf(ModelError);
    expect(e3.message).toContain('carries no config');
    // ... which loads with a JSON beside it (back-compatible pairs)
    await writeFile(`${base}.json`, JSON.stringify(net.config));
    const copy = await loadModelFiles(base);
    expect(copy.config).toEqual(net.config);
    // a config in the JSON that does not fit the weights names both files
    await writeFile(`${base}.json`, JSON.stringify({ ...net.config, width: 9 }));
    const e4 = await loadModelFiles(base).catch((e) => e);
    expect(e4).toBeInstanceOf(ModelError);
    expect(e4.message).toContain(`${base}.safetensors with ${base}.json: parameter`);
    copy.dispose();
    net.dispose();
    await rm(dir, { recursive: true });
  });

  it('the shipped pairs of @diffuse/train (weights with embedded config) load', async () => {
    const weights = join(pkg, '..', 'train', 'weights');
    if (!existsSync(weights)) return; // a published tarball of this package alone
    const names = (await readdir(weights)).filter((f) => f.endsWith('.safetensors'));
    expect(names.length).toBeGreaterThan(0);
    for (const f of names) {
      const base = join(weights, f.replace(/\.safetensors$/, ''));
      const net = await loadModelFiles(base);
      expect(net.config).toEqual(JSON.parse(await readFile(`${base}.json`, 'utf8')));
      net.dispose();
    }
  });

  it('removes temporary files of dead writers, keeps those of live processes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'diffuse-models-'));
    const base = join(dir, 'm');
    const dead = 2 ** 22 + 12345; // above Linux's default pid_max: no such process
    const stale = [`m.safetensors.tmp-${dead}-1765152000000`, `m.json.tmp-${dead}-1765152000001`];
    const live = `m.safetensors.tmp-${process.ppid}-1765152000002`;
    for (const f of [...stale, live, 'other.json.tmp-1-1']) await writeFile(join(dir, f), 'x');
    expect((await removeStaleTemporaries(base)).sort()).toEqual(stale.sort());
    const net = createModel(mlpConfig({ dim: 2, width: 8, depth: 1, embedDim: 8 }));
    await saveModelFiles(net, base);
    net.dispose();
    expect((await readdir(dir)).sort()).toEqual(
      ['m.json', 'm.safetensors', live, 'other.json.tmp-1-1'].sort(),
    );
    await rm(dir, { recursive: true });
  });
});

/** Generation g's model: width alternates, so weights of one and config of the other never fit. */
const generation = (g: number): MlpConfig =>
  mlpConfig({ dim: 2, width: g % 2 ? 8 : 16, depth: 1, embedDim: 8 });

/** A child process that saves generations 1, 2, 3, ... to `base` until killed. */
const CHILD = `
const [models, modelsNode, backend, base] = process.argv.slice(2);
const { createModel, mlpConfig } = await import(models);
const { saveModelFiles } = await import(modelsNode);
const { initBackend } = await import(backend);
await initBackend('cpu');
process.stdout.write('ready\\n');
for (let g = 1; ; g++) {
  const net = createModel(mlpConfig({ dim: 2, width: g % 2 ? 8 : 16, depth: 1, embedDim: 8 }), { seed: g });
  await saveModelFiles(net, base, { generation: String(g) });
  net.dispose();
  process.stdout.write('saved ' + g + '\\n');
}
`;

describe('saveModelFiles survives kill -9 at any moment', () => {
  it('killed between the two renames (new weights, old JSON): the new model loads', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'diffuse-models-'));
    const base = join(dir, 'm');
    const a = createModel(generation(1), { seed: 1 });
    await saveModelFiles(a, base);
    const b = createModel(generation(2), { seed: 2 });
    // exactly what saveModelFiles has done when killed after renaming the weights file
    await writeFileAtomic(`${base}.safetensors`, (await saveModel(b)).weights);
    const loaded = await loadModelFiles(base);
    expect(loaded.config).toEqual(generation(2));
    expect(Array.from(loaded.params[4]!.dataSync())).toEqual(Array.from(b.params[4]!.dataSync()));
    for (const m of [a, b, loaded]) m.dispose();
    await rm(dir, { recursive: true });
  });

  it('after SIGKILL at seeded random moments, the last committed or the next generation loads, never a mix', async () => {
    // The children run the built package (dist): it must be as new as the sources it is built from.
    const dist = join(pkg, 'dist');
    const built = ['index.js', 'node.js'].map((f) => statSync(join(dist, f)).mtimeMs);
    for (const f of ['node.ts', 'model-io.ts', 'networks.ts', 'nn.ts'])
      expect(
        statSync(join(here, f)).mtimeMs,
        `dist/ is older than src/${f}: run pnpm build`,
      ).toBeLessThanOrEqual(Math.min(...built));
    // the build Node loads through @diffuse/backend's `node` export condition
    const backend = join(pkg, 'node_modules', '@diffuse', 'backend', 'dist', 'node', 'index.js');
    const root = await mkdtemp(join(tmpdir(), 'diffuse-kill-'));
    const script = join(root, 'child.mjs');
    await writeFile(script, CHILD);
    const rng = Random.seed(17); // the kill times
    const rand = () => rng.uniform01();
    const KILLS = 8;
    const PARALLEL = 8;
    const children: ChildProcess[] = [];
    let killedWithTemporaries = 0;
    let loadedNewer = 0;
    const trial = async (k: number) => {
      const dir = join(root, `t${k}`);
      const base = join(dir, 'model');
      await mkdir(dir);
      const delay = 5 + rand() * 120;
      // generation 0 exists before the child starts
      const net0 = createModel(generation(0), { seed: 0 });
      await saveModelFiles(net0, base, { generation: '0' });
      net0.dispose();
      const child = spawn(
        process.execPath,
        [
          script,
          pathToFileURL(join(dist, 'index.js')).href,
          pathToFileURL(join(dist, 'node.js')).href,
          pathToFileURL(backend).href,
          base,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      let out = '';
      let err = '';
      child.stderr.on('data', (d) => {
        err += d;
      });
      // 'close', not 'exit': every line the child wrote before the kill has then been read
      const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d) => {
          out += d;
          if (out.includes('ready\n')) resolve();
        });
        child.on('exit', () => reject(new Error(`child exited before ready: ${err}`)));
      });
      await new Promise((r) => setTimeout(r, delay));
      child.kill('SIGKILL');
      await exited;
      const committed = Math.max(0, ...[...out.matchAll(/saved (\d+)/g)].map((m) => Number(m[1])));
      const names = await readdir(dir);
      if (names.some((n) => n.includes('.tmp-'))) killedWithTemporaries++;
      const net = await loadModelFiles(base);
      const bytes = new Uint8Array(await readFile(`${base}.safetensors`));
      const g = Number(parseSafetensors(bytes).metadata.generation);
      // the last generation the child reported, or the one it was writing when killed
      expect([committed, committed + 1]).toContain(g);
      if (g > committed) loadedNewer++;
      // config and weights are the same generation's
      expect(net.config).toEqual(generation(g));
      const ref = createModel(generation(g), { seed: g });
      ref.params.forEach((p, i) => {
        expect(Array.from(net.params[i]!.dataSync())).toEqual(Array.from(p.dataSync()));
      });
      ref.dispose();
      net.dispose();
      // the next save removes the dead writer's temporary files
      const next = createModel(generation(g + 1), { seed: g + 1 });
      await saveModelFiles(next, base);
      next.dispose();
      expect((await readdir(dir)).sort()).toEqual(['model.json', 'model.safetensors']);
    };
    try {
      for (let k = 0; k < KILLS; k += PARALLEL)
        await Promise.all(Array.from({ length: PARALLEL }, (_, j) => trial(k + j)));
    } finally {
      // a failed trial must not leave a child saving forever
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await rm(root, { recursive: true, force: true });
    }
    console.log(
      `${KILLS} kills: ${killedWithTemporaries} left temporary files, ${loadedNewer} loaded the generation being written`,
    );
  });
});
