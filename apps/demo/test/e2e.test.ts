/**
 * End-to-end: serve the built page (`dist/`, made by the `build` script that `pnpm test` runs first)
 * from 127.0.0.1, drive Debian's chromium through playwright-core as a person would (train a few
 * steps, sample, compare, switch backends), check what the page shows, and save screenshots in
 * `test-results/`.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '@diffuse/config/chromium';
import { serveStatic } from '@diffuse/config/static-server';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ISOLATION_HEADERS } from '../vite.config.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
const results = join(here, '..', 'test-results');
const CHROMIUM = CHROMIUM_PATH;

/**
 * The shipped U-Net's metrics file (the page shows its `sampleEvaluation`). Issue 20's check, that
 * at least 12 of 16 classifier-free-guided samples (s = 3) read as the digit asked for, runs once
 * that file records >= 90% at s = 3 (over 500 samples, `eval-mnist`): at 90% a 16-sample draw
 * reaches 12 almost always, at the 67% of an older U-Net only about a third of the time.
 * `MNIST_CHECK_ANYWAY=1` runs it regardless (as `packages/train/src/judge.test.ts` does in Node).
 */
const unetMetricsFile = join(
  here,
  '..',
  '..',
  '..',
  'packages',
  'train',
  'weights',
  'mnist-unet.metrics.json',
);
const unetMetrics = existsSync(unetMetricsFile)
  ? JSON.parse(readFileSync(unetMetricsFile, 'utf8'))
  : undefined;
const shippedCfg3: number | undefined = unetMetrics?.sampleEvaluation?.guidance3?.accuracy;
const checkDigits =
  (shippedCfg3 !== undefined && shippedCfg3 >= 0.9) || process.env.MNIST_CHECK_ANYWAY === '1';
if (!checkDigits)
  console.warn(
    `skipping the 12-of-16 MNIST check: the shipped mnist-unet reads ${shippedCfg3 ?? 'an unknown share'} at s = 3 (< 0.9; MNIST_CHECK_ANYWAY=1 runs it)`,
  );

let server: Server;
let url: string;
let context: BrowserContext;
let page: Page;
let profile: string;
const offOrigin: string[] = [];
const pageErrors: string[] = [];

/** Waits until the section's last action finished, and fails with the page's own error message if it failed. */
async function done(section: string, timeout = 90_000): Promise<void> {
  const el = page.locator(`#${section}`);
  await page.waitForFunction(
    (id) => {
      const s = document.getElementById(id)?.dataset.state;
      return s === 'done' || s === 'error';
    },
    section,
    { timeout },
  );
  if ((await el.getAttribute('data-state')) === 'error') {
    throw new Error(`${section}: ${await el.locator('.error').first().textContent()}`);
  }
}

/** Clicks a button and waits for its section to finish. */
async function run(section: string, button: string, timeout?: number): Promise<void> {
  await page.evaluate((id) => {
    document.getElementById(id)!.dataset.state = 'queued';
  }, section);
  await page.click(`#${button}`);
  await done(section, timeout);
}

/**
 * Opaque canvas pixels darker than the light background grid: what data, arrows and images ink.
 * (A lost or never-drawn canvas reads back transparent and counts 0.)
 */
function inked(selector: string): Promise<number> {
  return page.$eval(selector, (c) => {
    const canvas = c as HTMLCanvasElement;
    const d = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i + 3]! > 0 && (d[i]! < 200 || d[i + 1]! < 200 || d[i + 2]! < 200)) n++;
    }
    return n;
  });
}

async function expectDrawn(selector: string, atLeast = 200): Promise<void> {
  expect(await inked(selector), `${selector} looks blank`).toBeGreaterThan(atLeast);
}

async function msPerStep(): Promise<number> {
  return Number(await page.textContent('#ms-per-step'));
}

async function useBackend(name: string): Promise<string> {
  await page.selectOption('#backend-select', name);
  await page.waitForFunction(
    (n) =>
      document.body.dataset.backend === n ||
      document.getElementById('backend-error')!.textContent !== '',
    name,
    {
      timeout: 60_000,
    },
  );
  return (await page.textContent('#backend-active')) ?? '';
}

// Without Debian's chromium a developer's run skips (with a note); in CI (CI=true), where .ci/run
// installs it, a missing browser fails.
const haveBrowser = existsSync(CHROMIUM) || process.env.CI === 'true';
if (!haveBrowser)
  console.warn(
    `skipping the browser test: ${CHROMIUM} is missing (bash scripts/ensure-chromium.sh)`,
  );

describe.skipIf(!haveBrowser)('demo page in chromium', () => {
  beforeAll(async () => {
    if (!existsSync(join(dist, 'index.html'))) {
      throw new Error(
        `${dist}/index.html is missing: run the build first (pnpm --filter @diffuse/demo build)`,
      );
    }
    mkdirSync(results, { recursive: true });
    // The page's cross-origin isolation headers, as vite.config.ts sends them from the dev server and
    // the preview, so ONNX Runtime Web may use wasm threads.
    ({ server, url } = await serveStatic(dist, { headers: ISOLATION_HEADERS }));
    profile = mkdtempSync(join(tmpdir(), 'diffuse-demo-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS],
      viewport: { width: 1400, height: 1000 },
    });
    // Offline: everything must come from our own server.
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(url) || u.startsWith('data:') || u.startsWith('blob:'))
        return route.continue();
      offOrigin.push(u);
      return route.abort();
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // Start on wasm: `auto` would pick WebGPU, which on SwiftShader's fallback adapter is correct but
    // far too slow for a test; WebGPU is tried last.
    await page.goto(`${url}?backend=wasm`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true', undefined, {
      timeout: 90_000,
    });
  });

  afterAll(async () => {
    await page
      ?.screenshot({ path: join(results, 'demo-final.png'), fullPage: true })
      .catch(() => undefined);
    // The page's own per-backend ms/step line, kept as an artefact beside the screenshots.
    const times = await page?.textContent('#backend-times').catch(() => null);
    if (times) writeFileSync(join(results, 'timings.txt'), `${times.split(' · ').join('\n')}\n`);
    await context?.close();
    server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('starts on a working backend and draws the forward process and its schedule', async () => {
    expect(await page.textContent('#backend-active')).toBe('wasm');
    // @diffuse/backend's own SIMD kernels bind to tfjs-wasm's heap in the browser too
    expect(await page.textContent('#backend-caps')).toContain('Diffuse SIMD kernels');
    await expectDrawn('#forward-canvas');
    await page.fill('#forward-t', '0.8');
    await page.dispatchEvent('#forward-t', 'input');
    await done('forward');
    await expectDrawn('#forward-canvas');
    expect(await page.locator('#schedule-chart canvas').count()).toBeGreaterThan(0);
    // Every picker starts on a real choice.
    expect(await page.inputValue('#guide-class')).toBe('0');
    expect(await page.inputValue('#sampler-select')).toBe('dpmpp_2m');
  });

  it('trains the MLP live: losses finite and falling, ms per step positive', async () => {
    await page.fill('#train-steps', '60');
    await page.fill('#train-batch', '64');
    await run('train', 'train-button');
    expect(Number(await page.textContent('#train-step'))).toBe(60);
    const losses = JSON.parse(
      (await page.getAttribute('#loss-value', 'data-losses')) ?? '[]',
    ) as number[];
    expect(losses).toHaveLength(60);
    expect(losses.every(Number.isFinite)).toBe(true);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    // epsilon-prediction MSE starts near 1 (the noise variance) and must fall.
    expect(mean(losses.slice(-15))).toBeLessThan(mean(losses.slice(0, 15)));
    expect(await msPerStep()).toBeGreaterThan(0);
    expect(await page.locator('#loss-chart canvas').count()).toBeGreaterThan(0);
  });

  it('samples from the oracle with trajectories, and from the trained MLP', async () => {
    await page.fill('#sample-steps', '8');
    await page.fill('#sample-n', '256');
    await page.selectOption('#sampler-select', 'dpmpp_2m');
    await run('sample', 'sample-button');
    await expectDrawn('#sample-canvas', 500);
    expect(Number(await page.getAttribute('#sample-info', 'data-nfe'))).toBe(8);
    const ms = await msPerStep();
    expect(ms).toBeGreaterThan(0);
    expect(Number(await page.getAttribute('#sample-info', 'data-ms'))).toBeGreaterThan(0);
    // Oracle samples lie on the data: their mean log-density under the oracle is close to that of
    // fresh data, far above that of N(0, I) noise.
    const ll = Number(await page.getAttribute('#sample-info', 'data-loglik'));
    const llData = Number(await page.getAttribute('#sample-info', 'data-loglik-data'));
    const llNoise = Number(await page.getAttribute('#sample-info', 'data-loglik-noise'));
    expect(llData).toBeGreaterThan(llNoise + 1);
    expect(ll).toBeGreaterThan(llNoise + 0.8 * (llData - llNoise));
    await page.selectOption('#sample-model', 'mlp');
    await page.selectOption('#sampler-select', 'euler');
    await run('sample', 'sample-button');
    expect(Number.isFinite(Number(await page.getAttribute('#sample-info', 'data-loglik')))).toBe(
      true,
    );
    await page.selectOption('#sample-model', 'oracle');
  });

  it('compares samplers at equal NFE', async () => {
    await page.fill('#compare-nfe', '6');
    await run('compare', 'compare-button');
    const rows = await page.$$eval('#compare-table tr', (trs) =>
      trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')),
    );
    expect(rows).toHaveLength(4);
    for (const [name, steps, nfe, ms, ll] of rows) {
      expect(Number(nfe), `${name} NFE`).toBeLessThanOrEqual(6);
      expect(Number(steps), `${name} steps`).toBeGreaterThanOrEqual(1);
      expect(Number(ms), `${name} ms/step`).toBeGreaterThan(0);
      expect(Number.isFinite(Number(ll)), `${name} log p`).toBe(true);
    }
    // Heun spends two evaluations per step (the last step is a plain Euler step): 3 steps in 6.
    expect(rows[1]![0]).toBe('heun');
    expect(rows[1]![1]).toBe('3');
    for (let k = 0; k < 4; k++) await expectDrawn(`#compare-canvas-${k}`);
  });

  it('sweeps NFE: every sampler gets closer to the data with more evaluations', async () => {
    await page.fill('#sample-n', '96');
    await run('compare', 'compare-sweep');
    const curves = JSON.parse(
      (await page.getAttribute('#compare-sweep-chart', 'data-curves')) ?? '{}',
    ) as Record<string, number[]>;
    expect(Object.keys(curves)).toEqual(['euler', 'heun', 'dpmpp_2m', 'unipc']);
    for (const [name, c] of Object.entries(curves)) {
      expect(c, name).toHaveLength(5);
      expect(c.every(Number.isFinite), name).toBe(true);
      // NFE 24 is better than NFE 4 for every sampler.
      expect(c[4]!, name).toBeGreaterThan(c[0]!);
    }
    expect(await page.locator('#compare-sweep-chart canvas').count()).toBeGreaterThan(0);
  });

  it('shows x0, epsilon and score for the oracle and the trained model, consistent after conversion', async () => {
    await page.fill('#views-t', '0.5');
    await page.dispatchEvent('#views-t', 'input');
    await done('views');
    for (const id of ['x0', 'eps', 'score']) {
      await expectDrawn(`#view-${id}-oracle`);
      await expectDrawn(`#view-${id}-model`);
    }
    const cells = await page.$$eval('#views-table tr', (trs) =>
      trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')),
    );
    expect(cells).toHaveLength(2);
    for (const row of cells) {
      expect(Number(row[1])).toBeLessThan(1e-3);
      expect(Number(row[2])).toBeLessThan(1e-3);
    }
  });

  it('guides the class-conditional mixture: both kinds of guidance reach the class, more with a larger scale', async () => {
    await page.fill('#guide-steps', '10');
    await page.fill('#guide-n', '128');
    await page.selectOption('#guide-class', '2');
    const acc = async (scale: string) => {
      await page.fill('#guide-scale', scale);
      await run('guidance', 'guide-button');
      await expectDrawn('#guide-cfg', 300);
      await expectDrawn('#guide-classifier', 300);
      return [
        Number(await page.getAttribute('#guide-cfg', 'data-accuracy')),
        Number(await page.getAttribute('#guide-classifier', 'data-accuracy')),
      ];
    };
    // s = 0 is the unconditional model: about 1/8 of the samples fall in class 2.
    const [cfg0, cls0] = await acc('0');
    expect(cfg0).toBeLessThan(0.4);
    expect(cls0).toBeLessThan(0.4);
    const [cfg3, cls3] = await acc('3');
    expect(cfg3).toBeGreaterThan(0.9);
    expect(cls3).toBeGreaterThan(0.9);
    // The trained class-conditional MLP shipped in packages/train/weights/, when present.
    const trained = await page.$$eval('#guide-model option', (os) =>
      os.map((o) => (o as HTMLOptionElement).value).filter((v) => v.startsWith('trained')),
    );
    if (trained.length === 0) {
      console.warn('no trained 2-D mixture model shipped: guidance ran on the exact oracle only');
      return;
    }
    await page.selectOption('#guide-model', trained[0]!);
    const [cfgT0, clsT0] = await acc('0');
    const [cfgT, clsT] = await acc('3');
    // Kept as an artefact: class accuracy under the exact posterior, oracle and trained model.
    writeFileSync(
      join(results, 'guidance.json'),
      `${JSON.stringify({ class: 2, oracle: { s0: [cfg0, cls0], s3: [cfg3, cls3] }, trained: { s0: [cfgT0, clsT0], s3: [cfgT, clsT] }, order: ['classifier-free', 'classifier'] }, null, 2)}\n`,
    );
    expect(cfgT, 'trained model, classifier-free, s = 3').toBeGreaterThan(0.8);
    expect(clsT, 'trained model, classifier guidance, s = 3').toBeGreaterThan(0.8);
    await page.selectOption('#guide-model', { index: 0 });
  });

  it('samples digits from the shipped MNIST U-Net with guidance (when the repo ships one)', async () => {
    const available = await page.getAttribute('#mnist', 'data-available');
    if (available !== 'true') {
      expect(await page.textContent('#mnist-info')).toMatch(/No trained U-Net/);
      console.warn('no trained U-Net shipped: the MNIST section was not exercised');
      return;
    }
    await page.fill('#mnist-steps', '3');
    await page.fill('#mnist-n', '2');
    await run('mnist', 'mnist-button', 150_000);
    await expectDrawn('#mnist-cfg', 300);
    await expectDrawn('#mnist-uncond', 300);
    expect(await msPerStep()).toBeGreaterThan(0);
    // When a digit classifier is shipped, it reads the samples: a share in [0, 1].
    const acc = await page.getAttribute('#mnist-cfg', 'data-accuracy');
    if (acc !== null) {
      expect(Number(acc)).toBeGreaterThanOrEqual(0);
      expect(Number(acc)).toBeLessThanOrEqual(1);
    }
  });

  it('MNIST: a grid of 16 guided samples by default, read by the judge, the evaluation beside it', async () => {
    if ((await page.getAttribute('#mnist', 'data-available')) !== 'true') return;
    // Defaults: 16 images, 20 steps (as the shipped evaluation), classifier-free at s = 3.
    expect(await page.inputValue('#mnist-method')).toBe('cfg');
    expect(await page.inputValue('#mnist-scale')).toBe('3');
    const ev = unetMetrics?.sampleEvaluation;
    if (!ev) {
      expect(await page.textContent('#mnist-eval')).toMatch(/has no sample evaluation/);
    } else {
      // The table shows the numbers of the metrics file: accuracy per mode, the chosen digit marked.
      for (const key of ['guidance3', 'guidance1', 'classifierGuidance3']) {
        if (ev[key]?.accuracy === undefined) continue;
        const cell = `#mnist-eval-table tr[data-mode="${key}"] td[data-accuracy]`;
        expect(Number(await page.getAttribute(cell, 'data-accuracy')), key).toBe(ev[key].accuracy);
        expect(await page.textContent(cell)).toBe(`${(100 * ev[key].accuracy).toFixed(1)}%`);
      }
      if (ev.frechet?.floor !== undefined) {
        expect(await page.textContent('#mnist-eval-table tr[data-mode="floor"]')).toContain(
          ev.frechet.floor.toFixed(0),
        );
      }
      await page.selectOption('#mnist-class', '5');
      expect(
        await page.$$eval('#mnist-eval-table th.chosen', (c) => c.map((x) => x.textContent)),
      ).toEqual(['5']);
      await page.selectOption('#mnist-class', '3');
    }
    // The last run (2 images of 3) was read by the judge: caption, count and classes agree.
    expect(await page.getAttribute('#mnist-cfg', 'data-judge')).toBe('mnist-judge');
    const classes = ((await page.getAttribute('#mnist-cfg', 'data-classes')) ?? '').split(' ');
    expect(classes).toHaveLength(2);
    const right = classes.filter((c) => c === '3').length;
    expect(Number(await page.getAttribute('#mnist-cfg', 'data-read'))).toBe(right);
    expect(await page.textContent('#mnist figcaption')).toContain(
      `the judge (mnist-judge) reads ${right} of 2 as 3`,
    );
  });

  it.skipIf(!checkDigits)(
    'MNIST: at least 12 of 16 classifier-free-guided samples (s = 3, 20 steps) read as asked, for 7 and 3',
    async () => {
      expect(await page.getAttribute('#mnist', 'data-available')).toBe('true');
      await page.selectOption('#mnist-method', 'cfg');
      await page.selectOption('#mnist-runtime', 'tfjs');
      await page.fill('#mnist-scale', '3');
      await page.dispatchEvent('#mnist-scale', 'input');
      await page.fill('#mnist-steps', '20');
      await page.fill('#mnist-n', '16');
      const got: Record<string, { read: number; classes: string; msPerStep: number }> = {};
      for (const d of [7, 3]) {
        await page.selectOption('#mnist-class', String(d));
        await run('mnist', 'mnist-button', 150_000);
        expect(await page.getAttribute('#mnist-cfg', 'data-judge')).toBe('mnist-judge');
        got[d] = {
          read: Number(await page.getAttribute('#mnist-cfg', 'data-read')),
          classes: (await page.getAttribute('#mnist-cfg', 'data-classes')) ?? '',
          msPerStep: Number(await page.getAttribute('#mnist-cfg', 'data-ms')),
        };
        expect(await page.textContent('#mnist figcaption')).toContain(
          `reads ${got[d].read} of 16 as ${d}`,
        );
        await page.locator('#mnist').screenshot({ path: join(results, `mnist-digit-${d}.png`) });
      }
      writeFileSync(
        join(results, 'mnist-digits.json'),
        `${JSON.stringify({ method: 'cfg', scale: 3, steps: 20, images: 16, backend: 'wasm', shippedCfg3, digits: got }, null, 2)}\n`,
      );
      console.log(`judge readings in the page: ${JSON.stringify(got)}`);
      for (const [d, g] of Object.entries(got)) {
        expect(g.read, `digit ${d}: read as ${g.classes}`).toBeGreaterThanOrEqual(12);
      }
    },
  );

  it('samples MNIST digits on ONNX Runtime Web (both cores, cross-origin isolated) as tfjs does', async () => {
    if ((await page.getAttribute('#mnist', 'data-available')) !== 'true') return;
    // The server sends COOP/COEP, so the page is isolated and ONNX Runtime Web gets wasm threads.
    expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true);
    expect(await page.textContent('#mnist-runtime option[value="onnx"]')).toMatch(/\d threads?\)/);
    await page.fill('#mnist-steps', '3');
    await page.fill('#mnist-n', '2');
    const means: Record<string, { cfg: number; uncond: number }> = {};
    for (const rt of ['tfjs', 'onnx']) {
      await page.selectOption('#mnist-runtime', rt);
      await run('mnist', 'mnist-button', 150_000);
      expect(await page.getAttribute('#mnist-cfg', 'data-runtime')).toBe(rt);
      expect(await page.getAttribute('#mnist-uncond', 'data-runtime')).toBe(rt);
      means[rt] = {
        cfg: Number(await page.getAttribute('#mnist-cfg', 'data-mean')),
        uncond: Number(await page.getAttribute('#mnist-uncond', 'data-mean')),
      };
    }
    // Same noise, same sampler and guidance: the two runtimes' networks agree to float32 rounding.
    expect(Math.abs(means.onnx!.cfg - means.tfjs!.cfg)).toBeLessThan(1e-3);
    expect(Math.abs(means.onnx!.uncond - means.tfjs!.uncond)).toBeLessThan(1e-3);
    expect(Number.isFinite(means.onnx!.cfg)).toBe(true);
    expect(await page.textContent('#mnist-info')).toMatch(/on ONNX Runtime Web, \d thread/);
    await page.selectOption('#mnist-runtime', 'tfjs');
  });

  it('guides the MNIST U-Net with the shipped noise-conditional classifier (classifier guidance)', async () => {
    if ((await page.getAttribute('#mnist', 'data-available')) !== 'true') return;
    // The repo ships mnist-noisy-classifier beside the U-Net: the method must be offered.
    expect(await page.getAttribute('#mnist', 'data-classifier-guidance')).toBe('true');
    expect(await page.textContent('#mnist-guide-info')).toMatch(/logSNR 0: \d/);
    await page.selectOption('#mnist-method', 'classifier');
    await page.fill('#mnist-scale', '4');
    await page.dispatchEvent('#mnist-scale', 'input');
    await page.fill('#mnist-steps', '3');
    await page.fill('#mnist-n', '2');
    await run('mnist', 'mnist-button', 150_000);
    await expectDrawn('#mnist-cfg', 300);
    await expectDrawn('#mnist-uncond', 300);
    expect(await page.getAttribute('#mnist-cfg', 'data-method')).toBe('classifier');
    expect(await page.textContent('#mnist-info')).toMatch(
      /classifier guidance \(mnist-noisy-classifier\), s = 4/,
    );
    const numbers: Record<string, number[]> = {};
    for (const id of ['#mnist-cfg', '#mnist-uncond']) {
      const read = async (a: string) => Number(await page.getAttribute(id, `data-${a}`));
      const [ms, min, max, accuracy] = await Promise.all(
        ['ms', 'min', 'max', 'accuracy'].map(read),
      );
      numbers[id] = [ms!, min!, max!, accuracy!];
      expect(ms, `${id} ms/step`).toBeGreaterThan(0);
      // Finite samples (a NaN or an exploding gradient would show here), accuracy a share.
      expect(Number.isFinite(min) && Number.isFinite(max), `${id} sample range`).toBe(true);
      expect(max! - min!, `${id} sample range`).toBeGreaterThan(0);
      expect(accuracy, `${id} class accuracy`).toBeGreaterThanOrEqual(0);
      expect(accuracy, `${id} class accuracy`).toBeLessThanOrEqual(1);
    }
    expect(await msPerStep()).toBeGreaterThan(0);
    expect(await page.textContent('#ms-per-step-what')).toContain('wasm');
    writeFileSync(
      join(results, 'mnist-guidance.json'),
      `${JSON.stringify({ method: 'classifier', scale: 4, steps: 3, images: 2, digit: 3, 'ms/min/max/accuracy': numbers }, null, 2)}\n`,
    );
    await page
      .locator('#mnist')
      .screenshot({ path: join(results, 'mnist-classifier-guidance.png') });
    await page.selectOption('#mnist-method', 'cfg');
  });

  it('loads a diffusers model folder picked by a person and samples it, class-guided', async () => {
    // The class-conditional reference checkpoint made by diffusers itself (reference-data/).
    const folder = join(
      here,
      '..',
      '..',
      '..',
      'reference-data',
      'diffusers-models',
      'unet2d-class-cond',
    );
    await page.setInputFiles('#diffusers-files', [
      join(folder, 'config.json'),
      join(folder, 'diffusion_pytorch_model.safetensors'),
    ]);
    await done('diffusers');
    expect(await page.getAttribute('#diffusers', 'data-loaded')).toBe('UNet2DModel');
    expect(await page.textContent('#diffusers-info')).toMatch(
      /UNet2DModel, 177,489 parameters.*10 classes/,
    );
    await page.fill('#diffusers-steps', '3');
    await page.fill('#diffusers-n', '2');
    await page.fill('#diffusers-class', '3');
    await run('diffusers', 'diffusers-button', 120_000);
    expect(await page.textContent('#diffusers-info')).toMatch(/2 samples in/);
    await expectDrawn('#diffusers-canvas', 300);
    // A folder with nothing to load says why, in the section.
    await page.setInputFiles('#diffusers-files', [join(folder, 'io.json')]);
    await page.waitForFunction(
      () => document.getElementById('diffusers')?.dataset.state === 'error',
    );
    expect(await page.textContent('#diffusers .error')).toMatch(/no config.json/);
  });

  it('switches backends (webgl, cpu) and keeps working, with the time per step shown', async () => {
    for (const name of ['webgl', 'cpu']) {
      expect(await useBackend(name)).toBe(name);
      await page.fill('#sample-steps', '4');
      await page.fill('#sample-n', '128');
      await run('sample', 'sample-button');
      await expectDrawn('#sample-canvas', 300);
      expect(await msPerStep()).toBeGreaterThan(0);
      expect(await page.textContent('#ms-per-step-what')).toContain(name);
    }
    expect(await useBackend('wasm')).toBe('wasm');
    await page.screenshot({ path: join(results, 'demo.png'), fullPage: true });
  });

  it('tries webgpu last: it computes the three views correctly, or the page says why not and recovers', async () => {
    // WebGPU on SwiftShader's fallback adapter works but is very slow (seconds per sampler step, shader
    // compilation), so the check here is the redraw a switch triggers: forward process and three views.
    await page.evaluate(() => {
      document.getElementById('views')!.dataset.state = 'queued';
    });
    const got = await useBackend('webgpu');
    if (got !== 'webgpu') {
      // The page must say why, and stay on a working backend.
      expect(await page.textContent('#backend-error')).toMatch(/\w/);
      console.warn(`webgpu did not start here: ${await page.textContent('#backend-error')}`);
      expect(['webgl', 'wasm', 'cpu']).toContain(got);
      return;
    }
    await done('views', 150_000);
    await expectDrawn('#view-x0-oracle');
    const cells = await page.$$eval('#views-table tr', (trs) =>
      trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')),
    );
    for (const row of cells) {
      expect(Number(row[1])).toBeLessThan(1e-3);
      expect(Number(row[2])).toBeLessThan(1e-3);
    }
    await page.screenshot({ path: join(results, 'demo-webgpu.png') });
  });

  it('auto skips software GPUs (SwiftShader here) and starts on wasm, which then samples digits', async () => {
    const fresh = await context.newPage();
    fresh.on('pageerror', (e) => pageErrors.push(String(e)));
    try {
      await fresh.goto(url);
      await fresh.waitForFunction(() => document.body.dataset.ready === 'true', undefined, {
        timeout: 90_000,
      });
      expect(await fresh.evaluate(() => document.body.dataset.backend)).toBe('wasm');
      // The status line names what was skipped and why.
      const status = (await fresh.textContent('#status')) ?? '';
      expect(status).toMatch(/auto picked wasm/);
      expect(status).toMatch(/webgpu: the only WebGPU adapter is a software fallback/);
      expect(status).toMatch(/webgl: WebGL renders in software/);
      if ((await fresh.getAttribute('#mnist', 'data-available')) === 'true') {
        await fresh.fill('#mnist-steps', '2');
        await fresh.fill('#mnist-n', '2');
        await fresh.click('#mnist-button');
        await fresh.waitForFunction(
          () => ['done', 'error'].includes(document.getElementById('mnist')!.dataset.state ?? ''),
          undefined,
          { timeout: 150_000 },
        );
        expect(await fresh.getAttribute('#mnist', 'data-state')).toBe('done');
      }
    } finally {
      await fresh.close();
    }
  });

  it('loaded everything from its own server, with no page errors', () => {
    expect(offOrigin).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
