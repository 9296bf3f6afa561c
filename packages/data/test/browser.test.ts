/**
 * MNIST in the browser: bundle a page that imports the built package with Vite (as an app would),
 * serve it from 127.0.0.1 and load it in Debian's headless Chromium through playwright-core. The
 * digit files must come through the bundler (no Node APIs, nothing fetched from elsewhere).
 */
import { createReadStream, existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '@diffuse/config/chromium';
import { chromium } from 'playwright-core';
import { build } from 'vite';
import { describe, expect, it } from 'vitest';
import { loadMnist, ShuffledBatches } from '../dist/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = CHROMIUM_PATH;

describe.skipIf(!existsSync(CHROMIUM))('MNIST in a Vite-bundled page in Chromium', () => {
  it('loads the same 10,000 digits and shuffles them the same way as in Node', async () => {
    const out = mkdtempSync(join(tmpdir(), 'diffuse-data-browser-'));
    await build({
      root: join(here, 'browser-fixture'),
      logLevel: 'error',
      base: './',
      build: { outDir: out, emptyOutDir: true },
    });
    // the ten digit files became their own chunks
    const assets = readdirSync(join(out, 'assets'));
    expect(assets.filter((f) => f.endsWith('.js')).length).toBeGreaterThanOrEqual(11);

    const base = resolve(out);
    const server = createServer((req, res) => {
      const file = normalize(
        join(base, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)),
      );
      try {
        const path =
          file.startsWith(base) && statSync(file).isFile() ? file : join(base, 'index.html');
        const type =
          { '.js': 'text/javascript', '.html': 'text/html' }[extname(path)] ??
          'application/octet-stream';
        res.writeHead(200, { 'content-type': type });
        createReadStream(path).pipe(res);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const { port } = server.address() as AddressInfo;
    const profile = mkdtempSync(join(tmpdir(), 'diffuse-data-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [...CHROMIUM_ARGS],
    });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(`http://127.0.0.1:${port}/`);
      await page
        .waitForFunction(() => (window as { result?: unknown }).result !== undefined, null, {
          timeout: 30_000,
        })
        .catch((e) => {
          throw new Error(`${e}; page errors: ${errors.join(' | ')}`);
        });
      const result = await page.evaluate(
        () => (window as unknown as { result: Record<string, unknown> }).result,
      );
      expect(result.error).toBeUndefined();
      const node = await loadMnist();
      expect(result.count).toBe(10_000);
      expect(result.shape).toEqual([28, 28, 1]);
      expect(result.counts).toEqual([1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
      expect(result.min).toBe(-1);
      expect(result.max).toBe(1);
      expect(result.first).toEqual(
        Array.from(new ShuffledBatches(node, { batchSize: 4, seed: 1 }).nextIndices()),
      );
    } finally {
      await context.close();
      server.close();
    }
  });
});
