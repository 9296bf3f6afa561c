/**
 * The consumer check: the published packages as a user gets them. Every public package is packed
 * (`pnpm pack`, through the workspace's `beforePacking` hook), the tarballs are installed with npm into
 * a temporary project outside the workspace together with `@tensorflow/tfjs-core` and
 * `@tensorflow/tfjs-backend-wasm` from the registry, and that project:
 * - trains three steps and samples in Node as an ES module and as CommonJS (the same numbers);
 * - type-checks with tsc (strict, exactOptionalPropertyTypes, skipLibCheck false) under node16 and
 *   bundler resolution;
 * - bundles for the browser with esbuild (--platform=browser) and with vite, and both bundles train
 *   and sample in Debian's chromium;
 * - passes publint and attw (@arethetypeswrong/cli) without errors.
 * It prints the minified bytes each package adds to the esbuild bundle.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CHROMIUM_ARGS, CHROMIUM_PATH } from '@diffuse/config/chromium';
import { serveStatic } from '@diffuse/config/static-server';
import { build as esbuild, transform } from 'esbuild';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const workspace = resolve(here, '../../..');
const fixture = resolve(here, '../consumer');
const require = (await import('node:module')).createRequire(import.meta.url);
const TSC = require.resolve('typescript/bin/tsc');
const ATTW = join(dirname(require.resolve('@arethetypeswrong/cli/package.json')), 'dist/index.js');
const TFJS = '4.22.0';
const execFileAsync = promisify(execFile);

/** Public workspace packages: directory and name. */
const packages = readdirSync(join(workspace, 'packages'))
  .map((d) => ({
    dir: join(workspace, 'packages', d),
    ...readJson(join(workspace, 'packages', d, 'package.json')),
  }))
  .filter((p) => p.private !== true) as { dir: string; name: string }[];

function readJson(file: string): { name: string; private?: boolean } & Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8'));
}

let root: string;
let app: string;
const tarballs = new Map<string, string>();

interface ProgramResult {
  backend: string;
  losses: number[];
  mixtureMean: number[];
  mlpFinite: boolean;
  tensorsLeft: number;
}

function checkResult(r: ProgramResult, backend: string): void {
  expect(r.backend).toBe(backend);
  expect(r.losses).toHaveLength(3);
  for (const l of r.losses) expect(Number.isFinite(l) && l > 0).toBe(true);
  // the symmetric mixture's mean is (0, 0); 512 samples: standard error ~0.045 in x
  expect(Math.abs(r.mixtureMean[0] ?? 1)).toBeLessThan(0.2);
  expect(Math.abs(r.mixtureMean[1] ?? 1)).toBeLessThan(0.05);
  expect(r.mlpFinite).toBe(true);
  expect(r.tensorsLeft).toBe(0);
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'diffuse-consumer-'));
  const tgz = join(root, 'tgz');
  mkdirSync(tgz);
  for (const p of packages) {
    const out = execFileSync('pnpm', ['pack', '--pack-destination', tgz], {
      cwd: p.dir,
      encoding: 'utf8',
    });
    const file = out.trim().split('\n').pop() ?? '';
    tarballs.set(p.name, resolve(p.dir, file));
  }
  app = join(root, 'app');
  cpSync(fixture, app, { recursive: true });
  const dependencies: Record<string, string> = {
    '@tensorflow/tfjs-core': TFJS,
    '@tensorflow/tfjs-backend-wasm': TFJS,
    // what a TypeScript user in Node has (node-main.ts uses `process`)
    '@types/node': '20.19.43',
  };
  for (const [name, file] of tarballs) dependencies[name] = `file:${relative(app, file)}`;
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies }, null, 2),
  );
  execFileSync(
    'npm',
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      '--loglevel=error',
    ],
    { cwd: app, stdio: 'pipe' },
  );
}, 600_000);

afterAll(() => {
  if (root && !process.env.DIFFUSE_KEEP_CONSUMER) rmSync(root, { recursive: true, force: true });
});

describe('packed packages', () => {
  it('every public package packs, without devDependencies or workspace: specifiers', () => {
    expect(tarballs.size).toBe(packages.length);
    for (const name of tarballs.keys()) {
      const manifest = readJson(join(app, 'node_modules', name, 'package.json'));
      expect(manifest.devDependencies, name).toBeUndefined();
      expect(JSON.stringify(manifest), name).not.toMatch(
        /workspace:|@diffuse\/(config|checks|bench|demo)\b/,
      );
    }
  });

  it('no @diffuse dist holds tfjs-core code (no class Engine)', () => {
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory()
          ? files(join(dir, e.name))
          : /\.c?js$/.test(e.name)
            ? [join(dir, e.name)]
            : [],
      );
    const all = files(join(app, 'node_modules', '@diffuse'));
    expect(all.length).toBeGreaterThan(20);
    for (const f of all)
      expect(readFileSync(f, 'utf8'), f).not.toMatch(/class Engine\b|class Tensor\b/);
  });

  it('publint reports no errors', async () => {
    const { publint } = await import('publint');
    const { formatMessage } = await import('publint/utils');
    const problems: string[] = [];
    for (const [name, file] of tarballs) {
      const buf = readFileSync(file);
      const tarball = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
      const { messages, pkg } = await publint({ pack: { tarball }, level: 'warning' });
      for (const m of messages) {
        const line = `${name}: ${m.type}: ${formatMessage(m, pkg) ?? m.code}`;
        if (m.type === 'error') problems.push(line);
        else console.log(line);
      }
    }
    expect(problems).toEqual([]);
  });

  it('attw (are the types wrong) reports no problems', async () => {
    // Two at a time (CI has two cores); each run type-checks every entry under four resolutions.
    const queue = [...tarballs];
    const problems: string[] = [];
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const [name, file] = next;
        try {
          await execFileAsync(process.execPath, [ATTW, file, '--format', 'ascii', '--no-color']);
        } catch (e) {
          problems.push(`${name}:\n${(e as { stdout?: string }).stdout ?? String(e)}`);
        }
      }
    };
    await Promise.all([worker(), worker()]);
    expect(problems.join('\n')).toBe('');
  }, 300_000);
});

describe('Node', () => {
  let esm: ProgramResult;

  /** Strips the types of the fixture's TypeScript (no bundling: imports stay package imports). */
  async function emit(dir: string, format: 'esm' | 'cjs', ext: string): Promise<void> {
    mkdirSync(join(app, dir), { recursive: true });
    for (const name of ['program', 'node-main']) {
      const src = readFileSync(join(app, `${name}.ts`), 'utf8').replaceAll(
        "'./program.js'",
        `'./program${ext}'`,
      );
      const { code } = await transform(src, { loader: 'ts', format, target: 'node20' });
      writeFileSync(join(app, dir, `${name}${ext}`), code);
    }
  }

  it('trains and samples as an ES module (wasm)', async () => {
    await emit('node-esm', 'esm', '.mjs');
    const out = execFileSync(process.execPath, ['node-esm/node-main.mjs'], {
      cwd: app,
      encoding: 'utf8',
    });
    esm = JSON.parse(out.trim().split('\n').pop() ?? '');
    checkResult(esm, 'wasm');
    expect(out).not.toMatch(/tfjs-node/);
  });

  it('trains and samples as CommonJS, with the same numbers', async () => {
    await emit('node-cjs', 'cjs', '.cjs');
    const out = execFileSync(process.execPath, ['node-cjs/node-main.cjs'], {
      cwd: app,
      encoding: 'utf8',
    });
    const cjs = JSON.parse(out.trim().split('\n').pop() ?? '') as ProgramResult;
    checkResult(cjs, 'wasm');
    expect(cjs).toEqual(esm);
  });
});

describe('tsc (strict, exactOptionalPropertyTypes, skipLibCheck false)', () => {
  for (const resolution of ['node16', 'bundler'] as const) {
    it(`type-checks the consumer under ${resolution} resolution`, () => {
      const options = {
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        skipLibCheck: false,
        noEmit: true,
        target: 'ES2022',
        lib: ['ES2022', 'DOM'],
        ...(resolution === 'node16'
          ? { module: 'node16', moduleResolution: 'node16' }
          : { module: 'ESNext', moduleResolution: 'bundler' }),
      };
      const files = ['types.ts', 'program.ts', 'node-main.ts', 'browser/main.ts'];
      if (resolution === 'bundler') files.push('vite/main.ts', 'vite/vite-env.d.ts');
      const config = join(app, `tsconfig.${resolution}.json`);
      writeFileSync(config, JSON.stringify({ compilerOptions: options, files }, null, 2));
      let out = '';
      try {
        execFileSync(process.execPath, [TSC, '-p', config], {
          cwd: app,
          encoding: 'utf8',
          stdio: 'pipe',
        });
      } catch (e) {
        out = (e as { stdout?: string }).stdout ?? String(e);
      }
      expect(out).toBe('');
    });
  }
});

describe('browser bundles in chromium', () => {
  async function runPage(dir: string): Promise<ProgramResult> {
    const { url, server } = await serveStatic(dir);
    const profile = mkdtempSync(join(tmpdir(), 'diffuse-consumer-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      args: [...CHROMIUM_ARGS],
    });
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(url);
      await page.waitForFunction(
        () => {
          const w = window as unknown as { result?: unknown; failure?: string };
          return w.result !== undefined || w.failure !== undefined;
        },
        undefined,
        { timeout: 90_000 },
      );
      const { result, failure } = await page.evaluate(() => {
        const w = window as unknown as { result?: ProgramResult; failure?: string };
        return { result: w.result, failure: w.failure };
      });
      expect(failure ?? '').toBe('');
      expect(errors).toEqual([]);
      return result as ProgramResult;
    } finally {
      await context.close();
      server.close();
      rmSync(profile, { recursive: true, force: true });
    }
  }

  it('esbuild --platform=browser bundles it, and it trains and samples in chromium', async () => {
    const out = join(app, 'esbuild-dist');
    mkdirSync(join(out, 'wasm'), { recursive: true });
    const result = await esbuild({
      absWorkingDir: app,
      entryPoints: ['browser/main.ts'],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      minify: true,
      metafile: true,
      outfile: join(out, 'main.js'),
      logLevel: 'error',
    });
    const wasmDist = join(app, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
    for (const f of readdirSync(wasmDist).filter((f) => f.endsWith('.wasm'))) {
      copyFileSync(join(wasmDist, f), join(out, 'wasm', f));
    }
    writeFileSync(
      join(out, 'index.html'),
      '<!doctype html><script type="module" src="./main.js"></script>',
    );

    // Bytes each package adds to the minified bundle, from esbuild's metafile.
    const output = Object.values(result.metafile.outputs)[0];
    const sizes = new Map<string, number>();
    for (const [input, { bytesInOutput }] of Object.entries(output?.inputs ?? {})) {
      const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
      // @stdlib's many one-function packages (the normal quantile of @diffuse/losses) as one row
      const name = m?.[1]?.startsWith('@stdlib/') ? '@stdlib/*' : (m?.[1] ?? '(app)');
      sizes.set(name, (sizes.get(name) ?? 0) + bytesInOutput);
    }
    const rows = [...sizes].sort((a, b) => b[1] - a[1]);
    console.log(
      `esbuild browser bundle (minified, ${output?.bytes ?? 0} bytes in all), bytes per package:\n${rows
        .map(([n, b]) => `  ${n.padEnd(34)} ${(b / 1024).toFixed(1).padStart(7)} KB`)
        .join('\n')}`,
    );
    // One tfjs-core: its engine is bundled once, from tfjs-core itself.
    const engines = Object.keys(result.metafile.inputs).filter((i) =>
      /tfjs-core\/dist\/engine\.js$/.test(i),
    );
    expect(engines).toHaveLength(1);
    for (const [name, bytes] of sizes)
      if (name.startsWith('@diffuse/')) expect(bytes, name).toBeLessThan(400_000);

    const r = await runPage(out);
    checkResult(r, 'wasm');
  });

  it('vite builds it (wasm files as ?url imports), and it trains and samples in chromium', async () => {
    const { build } = await import('vite');
    await build({
      root: join(app, 'vite'),
      logLevel: 'error',
      configFile: false,
      build: { outDir: join(app, 'vite-dist'), emptyOutDir: true },
    });
    const assets = readdirSync(join(app, 'vite-dist', 'assets'));
    expect(assets.filter((f) => f.endsWith('.wasm'))).toHaveLength(3);
    const r = await runPage(join(app, 'vite-dist'));
    checkResult(r, 'wasm');
  });
});
