/**
 * End-to-end: serve the built page (`dist/`, made by the `build` script that `pnpm test` runs first)
 * from 127.0.0.1, drive Debian's chromium through playwright-core as a person would (train a few
 * steps, sample, compare, switch backends), check what the page shows, and save screenshots in
 * `test-results/`.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveStatic } from './static-server.js';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');
const results = join(here, '..', 'test-results');
const CHROMIUM = '/usr/bin/chromium';
// Launch flags from ../shared/STACK.md.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--enable-unsafe-webgpu',
];

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
  await page.waitForFunction((n) => document.body.dataset.backend === n || document.getElementById('backend-error')!.textContent !== '', name, {
    timeout: 60_000,
  });
  return (await page.textContent('#backend-active')) ?? '';
}

const haveBrowser = existsSync(CHROMIUM) && existsSync(join(dist, 'index.html'));

describe.skipIf(!haveBrowser)('demo page in chromium', () => {
  beforeAll(async () => {
    mkdirSync(results, { recursive: true });
    ({ server, url } = await serveStatic(dist));
    profile = mkdtempSync(join(tmpdir(), 'diffuse-demo-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ARGS,
      viewport: { width: 1400, height: 1000 },
    });
    // Offline: everything must come from our own server.
    await context.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(url) || u.startsWith('data:') || u.startsWith('blob:')) return route.continue();
      offOrigin.push(u);
      return route.abort();
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    // Start on wasm: under software rendering a WebGPU fallback adapter can reset the GPU process
    // (and with it accelerated canvases); WebGPU is tried last, after the screenshot.
    await page.goto(`${url}?backend=wasm`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true', undefined, { timeout: 90_000 });
  });

  afterAll(async () => {
    await page?.screenshot({ path: join(results, 'demo-final.png'), fullPage: true }).catch(() => undefined);
    await context?.close();
    server?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('starts on a working backend and draws the forward process and its schedule', async () => {
    expect(await page.textContent('#backend-active')).toBe('wasm');
    await expectDrawn('#forward-canvas');
    await page.fill('#forward-t', '0.8');
    await page.dispatchEvent('#forward-t', 'input');
    await done('forward');
    await expectDrawn('#forward-canvas');
    expect(await page.locator('#schedule-chart canvas').count()).toBeGreaterThan(0);
  });
});
