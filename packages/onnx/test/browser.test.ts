/**
 * `@diffuse/onnx/web` in a real browser: a page bundled with esbuild and served from 127.0.0.1 (with
 * onnxruntime-web's and tfjs-wasm's .wasm files served by the same server, as an app would) runs an
 * MLP exported in Node (symbolic batch) on onnxruntime-web through `sample` (dpmpp_2m) in headless
 * Debian chromium at two batch sizes with one session, and the samples must match the same runs on
 * tfjs in Node within 1e-4 of their scale. The page also exports a network itself (the export path
 * uses no Node API) and reports ms per model call against tfjs-wasm. A second test samples on the
 * WebGPU execution provider (SwiftShader's fallback adapter here, software) within 1e-3 of scale, or
 * is skipped saying why the page has no WebGPU adapter. Every request must stay on 127.0.0.1: the
 * demo has to work offline.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, Random } from '@diffuse/backend';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '@diffuse/config/chromium';
import { serveStatic } from '@diffuse/config/static-server';
import {
  type AutoencoderKL,
  createModel,
  type Mlp,
  mlpConfig,
  type UNet2DConditionModel,
  type UNet2DModel,
} from '@diffuse/models';
import { loadDiffusersModel } from '@diffuse/models/node';
import { sample } from '@diffuse/samplers';
import * as tf from '@tensorflow/tfjs-core';
import { build } from 'esbuild';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exportDiffusersOnnx, exportOnnx } from '../src/index.js';
import type {
  DiffusersPageRun,
  PageInput,
  PageOutput,
  SampleRun,
  WebGpuOutput,
} from './browser-page.js';
import { randomize } from './fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const haveBrowser = existsSync(CHROMIUM_PATH) || process.env.CI === 'true';
if (!haveBrowser) console.warn(`skipping the browser test: ${CHROMIUM_PATH} is missing`);

/** Two batch sizes sampled from the one exported file. */
const BATCHES = [256, 7];
const STEPS = 10;
/** WebGPU computes on another device (summation order, GPU sin/cos/exp): a looser bound. */
const WEBGPU_TOLERANCE = 1e-3;

/** max |reference - got| and max |reference| over all runs. */
function compare(reference: Float32Array[], got: number[][]): { err: number; scale: number } {
  expect(got.length).toBe(reference.length);
  let scale = 0;
  let err = 0;
  for (const [r, ref] of reference.entries()) {
    expect(got[r]!.length).toBe(ref.length);
    for (let i = 0; i < ref.length; i++) {
      scale = Math.max(scale, Math.abs(ref[i]!));
      err = Math.max(err, Math.abs(ref[i]! - got[r]![i]!));
    }
  }
  return { err, scale };
}

describe.skipIf(!haveBrowser)('onnxruntime-web in chromium', () => {
  let root: string;
  let profile: string;
  let server: Server;
  let url: string;
  let paths: string[];
  let context: BrowserContext;
  const offOrigin: string[] = [];
  const pageErrors: string[] = [];
  let input: PageInput;
  let reference: Float32Array[];
  let bytesLength = 0;

  beforeAll(async () => {
    await initBackend('wasm');
    // The model and the reference run, in Node on tfjs.
    const net = createModel(mlpConfig({ dim: 2, width: 64, depth: 3, numClasses: 3 }), {
      seed: 1,
    }) as Mlp;
    randomize(net, 2, 0.1);
    const bytes = exportOnnx(net); // any batch size
    bytesLength = bytes.length;
    const runs: SampleRun[] = [];
    reference = [];
    for (const [r, batch] of BATCHES.entries()) {
      const noise = Random.seed(5 + r).normal([batch, 2]);
      const labelValues = Array.from({ length: batch }, (_, i) => i % 4); // 3: the null class
      const labels = tf.tensor1d(labelValues, 'int32');
      const x = await sample(net, { sampler: 'dpmpp_2m', steps: STEPS, noise, cond: { labels } });
      reference.push((await x.data()) as Float32Array);
      runs.push({ noise: Array.from(await noise.data()), shape: [batch, 2], labels: labelValues });
      tf.dispose([x, noise, labels]);
    }
    input = { runs, steps: STEPS, timing: { width: 256, depth: 4, batch: 1024, calls: 4 } };
    net.dispose();

    // The app: page bundle, model file, and both runtimes' .wasm files, all from one server.
    root = mkdtempSync(join(tmpdir(), 'diffuse-onnx-web-'));
    await build({
      entryPoints: [join(here, 'browser-page.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      outfile: join(root, 'app.js'),
      logLevel: 'silent',
      // tsup's ESM shims in some @diffuse dists import `path` / `url` for __dirname, used only in
      // Node; stub them as Vite does (`__vite-browser-external`).
      plugins: [
        {
          name: 'node-builtins-external',
          setup(b) {
            b.onResolve({ filter: /^(node:)?(path|url|fs|module)$/ }, (a) => ({
              path: a.path,
              namespace: 'node-stub',
            }));
            b.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({
              contents: 'module.exports = {};',
              loader: 'js',
            }));
          },
        },
      ],
    });
    writeFileSync(
      join(root, 'index.html'),
      '<!doctype html><html><head><meta charset="utf-8"></head><body><script type="module" src="/app.js"></script></body></html>',
    );
    writeFileSync(join(root, 'mlp.onnx'), bytes);
    const ortDist = dirname(require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm'));
    mkdirSync(join(root, 'ort'));
    for (const f of [
      'ort-wasm-simd-threaded.wasm',
      'ort-wasm-simd-threaded.mjs',
      // The WebGPU build's runtime.
      'ort-wasm-simd-threaded.asyncify.wasm',
      'ort-wasm-simd-threaded.asyncify.mjs',
    ]) {
      copyFileSync(join(ortDist, f), join(root, 'ort', f));
    }
    const tfDist = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '..');
    mkdirSync(join(root, 'tfwasm'));
    for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm']) {
      copyFileSync(join(tfDist, 'dist', f), join(root, 'tfwasm', f));
    }
    ({ server, url, requests: paths } = await serveStatic(root));
    profile = mkdtempSync(join(tmpdir(), 'diffuse-onnx-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS],
    });
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(url) || u.startsWith('data:') || u.startsWith('blob:')) {
        return route.continue();
      }
      offOrigin.push(u);
      return route.abort();
    });
  });

  afterAll(async () => {
    await context?.close();
    await new Promise((ok) => (server ? server.close(ok) : ok(undefined)));
    for (const d of [root, profile]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('the web entry bundles for the browser without any Node built-in', async () => {
    const r = await build({
      entryPoints: [join(here, '..', 'src', 'web.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'silent',
      external: ['@diffuse/*', '@tensorflow/*', 'onnxruntime-web', 'onnxruntime-web/*'],
      metafile: true,
    });
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs.some((f) => f.includes('onnx-proto'))).toBe(true);
    expect(inputs.filter((f) => /(^|\/)(runtime|worker|node-async)\.ts$/.test(f))).toEqual([]);
  });

  it('samples with dpmpp_2m on onnxruntime-web as tfjs does in Node (1e-4 of scale), two batch sizes from one file, offline', async () => {
    const page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => document.body?.dataset.ready === 'true', undefined, {
      timeout: 20_000,
    });
    const out = (await page.evaluate(
      (i) =>
        (
          globalThis as unknown as { diffuseOnnxTest: (i: PageInput) => Promise<PageOutput> }
        ).diffuseOnnxTest(i),
      input,
    )) as PageOutput;

    expect(pageErrors).toEqual([]);
    expect(offOrigin).toEqual([]);
    expect(out.backend).toBe('wasm');
    // The runtime files came from the app itself.
    expect(paths).toContain('/ort/ort-wasm-simd-threaded.wasm');
    expect(paths).toContain('/mlp.onnx');

    const { err, scale } = compare(reference, out.samples);
    expect(scale).toBeGreaterThan(0.1);
    expect(err).toBeLessThanOrEqual(1e-4 * scale);

    // Exported in the page, checked against tfjs in the page.
    expect(out.inPage.scale).toBeGreaterThan(1e-3);
    expect(out.inPage.maxErr).toBeLessThanOrEqual(1e-4 * out.inPage.scale);
    expect(out.leaked).toBe(0);

    console.log(
      `onnxruntime-web in chromium: dpmpp_2m x ${STEPS} on a 2-d MLP (${bytesLength} bytes, symbolic batch) at batches ${BATCHES.join(' and ')} from one session, max |diff| ${err.toExponential(2)} (${(err / scale).toExponential(2)} of scale); in-page export ${(out.inPage.maxErr / out.inPage.scale).toExponential(2)} of scale; ms per call, MLP ${out.ms.depth}x${out.ms.width} batch ${out.ms.batch}: onnxruntime-web ${out.ms.onnx.toFixed(1)}, tfjs-wasm ${out.ms.tfjs.toFixed(1)} (crossOriginIsolated ${out.crossOriginIsolated}); requests: ${paths.join(' ')}`,
    );
    await page.close();
  });
  it(`samples with dpmpp_2m on the WebGPU execution provider as tfjs does in Node (${WEBGPU_TOLERANCE} of scale), or says why not`, async (ctx) => {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => document.body?.dataset.ready === 'true', undefined, {
      timeout: 20_000,
    });
    const out = (await page.evaluate(
      (i) =>
        (
          globalThis as unknown as { diffuseOnnxWebGpu: (i: PageInput) => Promise<WebGpuOutput> }
        ).diffuseOnnxWebGpu(i),
      input,
    )) as WebGpuOutput;
    await page.close();
    expect(errors).toEqual([]);
    if (!out.available) {
      console.warn(`skipping the WebGPU sampling test: ${out.reason}`);
      ctx.skip(`no WebGPU in headless chromium: ${out.reason}`);
      return;
    }
    expect(offOrigin).toEqual([]);
    expect(paths).toContain('/ort/ort-wasm-simd-threaded.asyncify.wasm');
    const { err, scale } = compare(reference, out.samples);
    expect(scale).toBeGreaterThan(0.1);
    expect(err).toBeLessThanOrEqual(WEBGPU_TOLERANCE * scale);
    expect(out.leaked).toBe(0);
    console.log(
      `onnxruntime-web WebGPU EP on ${out.adapter}: dpmpp_2m x ${STEPS} at batches ${BATCHES.join(' and ')}, max |diff| ${err.toExponential(2)} (${(err / scale).toExponential(2)} of scale); ms per call, MLP ${out.ms.depth}x${out.ms.width} batch ${out.ms.batch}: webgpu ${out.ms.webgpu.toFixed(1)}, wasm ${out.ms.wasm.toFixed(1)}`,
    );
  });
  it('runs exportDiffusersOnnx files (UNet2DModel, SD-1.x UNet2DConditionModel, VAE decode) on onnxruntime-web as tfjs does in Node (1e-4 of scale)', async () => {
    const refDir = (id: string) =>
      fileURLToPath(new URL(`../../../reference-data/diffusers-models/${id}/`, import.meta.url));
    const feed = async (t: tf.Tensor) => ({
      data: Array.from(await t.data()),
      shape: t.shape,
      dtype: t.dtype === 'int32' ? ('int32' as const) : ('float32' as const),
    });
    const runs: DiffusersPageRun[] = [];
    const expected: Float32Array[] = [];
    const names: string[] = [];
    const add = async (
      id: string,
      bytes: Uint8Array,
      feeds: Record<string, tf.Tensor>,
      output: string,
      ours: tf.Tensor,
    ) => {
      writeFileSync(join(root, `${id}.onnx`), bytes);
      const f: DiffusersPageRun['feeds'] = {};
      for (const [k, t] of Object.entries(feeds)) f[k] = await feed(t);
      runs.push({ url: `/${id}.onnx`, feeds: f, output });
      expected.push((await ours.data()) as Float32Array);
      names.push(id);
    };

    const ddpm = (await loadDiffusersModel(refDir('unet2d-class-cond'))) as UNet2DModel;
    {
      const c = ddpm.config;
      const s = c.sample_size as number;
      const sample = tf.randomNormal([2, c.in_channels as number, s, s], 0, 1, 'float32', 11);
      const timestep = tf.tensor1d([999, 250]);
      const classLabels = tf.tensor1d([3, 7], 'int32');
      const ours = ddpm.forward({ sample, timestep, classLabels });
      await add(
        'unet2d-class-cond',
        exportDiffusersOnnx(ddpm),
        { sample, timestep, class_labels: classLabels },
        'out_sample',
        ours,
      );
      tf.dispose([sample, timestep, classLabels, ours]);
      ddpm.dispose();
    }
    const sd = (await loadDiffusersModel(refDir('unet2d-cond-sd1-tiny'))) as UNet2DConditionModel;
    {
      const c = sd.config;
      const sample = tf.randomNormal([2, c.in_channels as number, 8, 8], 0, 1, 'float32', 12);
      const timestep = tf.tensor1d([981, 17.5]);
      const ehs = tf.randomNormal([2, 5, c.cross_attention_dim as number], 0, 1, 'float32', 13);
      const ours = sd.forward({ sample, timestep, encoderHiddenStates: ehs });
      await add(
        'unet2d-cond-sd1-tiny',
        exportDiffusersOnnx(sd, { tokens: 5 }),
        { sample, timestep, encoder_hidden_states: ehs },
        'out_sample',
        ours,
      );
      tf.dispose([sample, timestep, ehs, ours]);
      sd.dispose();
    }
    const vae = (await loadDiffusersModel(refDir('vae-kl-sd-tiny'))) as AutoencoderKL;
    {
      const z = tf.randomNormal([2, 4, 8, 8], 0, 1, 'float32', 14);
      const img = vae.decode(z);
      await add('vae-kl-sd-tiny', exportDiffusersOnnx(vae), { latent_sample: z }, 'sample', img);
      tf.dispose([z, img]);
      vae.dispose();
    }

    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => document.body?.dataset.ready === 'true', undefined, {
      timeout: 20_000,
    });
    const got = (await page.evaluate(
      (r) =>
        (
          globalThis as unknown as {
            diffuseOnnxDiffusers: (r: DiffusersPageRun[]) => Promise<number[][]>;
          }
        ).diffuseOnnxDiffusers(r),
      runs,
    )) as number[][];
    expect(errors).toEqual([]);
    expect(offOrigin).toEqual([]);
    const report: string[] = [];
    for (const [i, id] of names.entries()) {
      const { err, scale } = compare([expected[i]!], [got[i]!]);
      expect(scale, id).toBeGreaterThan(1e-3);
      expect(err, id).toBeLessThanOrEqual(1e-4 * scale);
      report.push(`${id} ${(err / scale).toExponential(2)}`);
    }
    console.log(
      `exportDiffusersOnnx files on onnxruntime-web (wasm) vs tfjs in Node, max |diff| / scale: ${report.join(', ')}`,
    );
    await page.close();
  });
});
