/**
 * `--browser`: runs the throughput and training workloads in headless Chromium on webgl, webgpu,
 * tfjs-wasm single-threaded and threaded, and ONNX Runtime Web (inference),
 * through playwright-core driving Debian's `/usr/bin/chromium` (never a downloaded browser), with the
 * launch flags of the project's STACK notes (SwiftShader WebGL, unsafe WebGPU fallback adapter).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '@diffuse/config/chromium';
import { recordBackend } from '../backends.js';
import { MODEL_NAMES } from '../models.js';
import { APP_ROOT } from '../paths.js';
import type { SuiteContext } from '../suite.js';
import type { BrowserBackendName, BrowserJob, BrowserResult } from './page.js';

const PAGE = resolve(APP_ROOT, 'dist/browser/page.global.js');
const require = createRequire(import.meta.url);

/** The folders holding tfjs-wasm's and onnxruntime-web's runtime files (served as /tfwasm/, /ort/). */
function runtimeDirs(): Record<string, string> {
  const dirs: Record<string, string> = {};
  for (const [prefix, pkg, file] of [
    ['/tfwasm/', '@tensorflow/tfjs-backend-wasm', 'dist/tfjs-backend-wasm-simd.wasm'],
    ['/ort/', 'onnxruntime-web', 'ort-wasm-simd-threaded.wasm'], // (its exports map)
  ] as const) {
    try {
      dirs[prefix] = dirname(require.resolve(`${pkg}/${file}`));
    } catch {
      // not installed: that backend's page reports the failed fetch
    }
  }
  return dirs;
}

/** wasm threads need SharedArrayBuffer, i.e. a cross-origin isolated page. */
const ISOLATION = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

/** tfjs-wasm and ONNX Runtime Web rows run at the Node sizes (to compare with Node's rows). */
const WASM_LIKE = new Set(['wasm-1t', 'wasm-threads', 'onnx-web']);
/** Longest a browser backend may take (both models, forward and training). */
const BACKEND_TIMEOUT_MS = 10 * 60_000;

/** Runs the browser backends of the plan and adds their rows to the throughput and training results. */
export async function runBrowser(ctx: SuiteContext): Promise<void> {
  const { plan, progress, results } = ctx;
  const suites = (['throughput', 'training'] as const).filter((s) => plan.suites.includes(s));
  const note = (s: string) => {
    for (const k of suites) results[k]?.notes.push(s);
  };
  if (suites.length === 0 || plan.browserBackends.length === 0) return;
  const executable = CHROMIUM_PATH;
  if (!existsSync(executable)) {
    note(
      `browser backends skipped: no Chromium at ${executable} (apt-get install chromium, or bash scripts/ensure-chromium.sh; CHROMIUM_PATH overrides the path)`,
    );
    return;
  }
  if (!existsSync(PAGE)) {
    note(`browser backends skipped: ${PAGE} is missing (pnpm --filter @diffuse/bench build)`);
    return;
  }
  const html =
    '<!doctype html><meta charset="utf-8"><title>diffuse bench</title><script src="/page.js"></script>';
  const js = readFileSync(PAGE);
  const dirs = runtimeDirs();
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const prefix = Object.keys(dirs).find((p) => path.startsWith(p));
    if (path === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript', ...ISOLATION }).end(js);
    } else if (prefix !== undefined) {
      const file = join(dirs[prefix]!, basename(path));
      if (!existsSync(file)) {
        res.writeHead(404, ISOLATION).end();
        return;
      }
      const type = file.endsWith('.wasm') ? 'application/wasm' : 'text/javascript';
      res.writeHead(200, { 'content-type': type, ...ISOLATION }).end(readFileSync(file));
    } else {
      res.writeHead(200, { 'content-type': 'text/html', ...ISOLATION }).end(html);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const profile = mkdtempSync(join(tmpdir(), 'diffuse-bench-chromium-'));
  progress.plan(plan.browserBackends.length);
  const { chromium } = await import('playwright-core');
  let context: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: executable,
      args: [...CHROMIUM_ARGS],
    });
    for (const backend of plan.browserBackends as BrowserBackendName[]) {
      // Software WebGL / WebGPU are slow here: the cpu sizes unless --full.
      const sizes = plan.preset === 'full' || WASM_LIKE.has(backend) ? plan.sizes : plan.cpuSizes;
      progress.status(`browser: ${backend}`);
      const page = await context.newPage();
      page.setDefaultTimeout(0);
      // Console errors (e.g. a wasm worker that failed to start) go into the notes.
      const consoleErrors = new Set<string>();
      page.on('console', (m) => {
        if (m.type() === 'error') consoleErrors.add(m.text().split('\n')[0]!.slice(0, 200));
      });
      await page.goto(`http://127.0.0.1:${port}/`);
      const job: BrowserJob = {
        backend,
        tfjsWasmPaths: '/tfwasm/',
        ortWasmPaths: '/ort/',
        models: MODEL_NAMES,
        suites: [...suites],
        sizes,
        warmup: plan.warmup,
        repeats: plan.repeats,
        seed: plan.seed,
      };
      try {
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `gave up after ${BACKEND_TIMEOUT_MS / 60_000} minutes (software rendering is slow; try smaller --cpu-*-batch)`,
                ),
              ),
            BACKEND_TIMEOUT_MS,
          );
        });
        const r = (await Promise.race([
          page.evaluate(
            (j) =>
              (
                globalThis as unknown as { diffuseBench: { run(j: unknown): Promise<unknown> } }
              ).diffuseBench.run(j),
            job,
          ),
          limit,
        ]).finally(() => clearTimeout(timer))) as BrowserResult;
        recordBackend(ctx.backends, {
          ...r.backend,
          browser: `Chromium ${context.browser()?.version() ?? ''}`.trim(),
        });
        results.throughput?.rows.push(...r.throughput);
        results.training?.rows.push(...r.training);
        for (const e of r.errors) note(`browser: ${e}`);
        if (!r.backend.available)
          note(
            `browser ${backend}: unavailable (${r.backend.reason})${consoleErrors.size > 0 ? `; console: ${[...consoleErrors].slice(0, 3).join(' | ')}` : ''}`,
          );
      } catch (e) {
        note(`browser ${backend} failed: ${(e as Error).message.split('\n')[0]}`);
      } finally {
        await page.close();
      }
      progress.tick();
    }
  } catch (e) {
    note(
      `browser backends skipped: Chromium did not start: ${(e as Error).message.split('\n')[0]}`,
    );
  } finally {
    // Suites that had no Node backend to run report on their browser rows alone.
    for (const k of suites) {
      const r = results[k];
      if (
        r &&
        r.rows.length > 0 &&
        r.rows.every((x) => x.environment === 'browser') &&
        r.status !== 'ok'
      ) {
        r.status = r.notes.some((n) => n.startsWith('browser')) ? 'partial' : 'ok';
      }
    }
    await context?.close();
    server.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
