/**
 * The contributor path as CONTRIBUTING.md writes it: `pnpm new sampler <name>` and
 * `pnpm new schedule <name>` run in a temporary copy of the parts of the repository they touch
 * (the package's sources and README, the generator scripts, biome.json; node_modules are linked, so
 * the other packages' built dists are reused), and the result, as generated, passes biome, tsc and the
 * package's conformance suite for the new name.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const workspace = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BIOME = join(workspace, 'node_modules', '.bin', 'biome');
const TSC = join(workspace, 'node_modules', 'typescript', 'bin', 'tsc');
const VITEST = join(workspace, 'node_modules', 'vitest', 'vitest.mjs');
const copies: string[] = [];

/** A temporary copy with what `pnpm new <kind>` reads and writes for one package. */
function copyFor(pkg: string): string {
  const root = mkdtempSync(join(tmpdir(), `diffuse-new-${pkg}-`));
  copies.push(root);
  for (const f of [
    'package.json',
    'biome.json',
    '.gitignore',
    'scripts/new.mjs',
    'tooling/template',
  ]) {
    cpSync(join(workspace, f), join(root, f), { recursive: true });
  }
  symlinkSync(join(workspace, 'node_modules'), join(root, 'node_modules'));
  const src = join(workspace, 'packages', pkg);
  const dest = join(root, 'packages', pkg);
  mkdirSync(dest, { recursive: true });
  for (const f of ['src', 'package.json', 'tsconfig.json', 'vitest.config.ts', 'README.md']) {
    cpSync(join(src, f), join(dest, f), { recursive: true });
  }
  symlinkSync(join(src, 'node_modules'), join(dest, 'node_modules'));
  return root;
}

function run(cmd: string, args: string[], cwd: string): string {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: 'utf8',
      stdio: 'pipe',
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** Passed tests (vitest's verbose lines, "✓ ...") whose name mentions `name`. */
function passedNaming(out: string, name: string): number {
  return out.split('\n').filter((l) => /^\s*✓/.test(l) && l.includes(name)).length;
}

afterAll(() => {
  for (const c of copies) rmSync(c, { recursive: true, force: true });
});

describe('pnpm new sampler', () => {
  it('writes a sampler that passes biome, tsc and the conformance suite as generated', () => {
    const root = copyFor('samplers');
    const pkg = join(root, 'packages', 'samplers');
    run(process.execPath, ['scripts/new.mjs', 'sampler', 'gen-check'], root);

    const file = readFileSync(join(pkg, 'src', 'samplers', 'gen-check.ts'), 'utf8');
    expect(file).toMatch(/name: 'gen_check'/);
    expect(readFileSync(join(pkg, 'src', 'samplers', 'index.ts'), 'utf8')).toMatch(
      /import \{ genCheck \} from '\.\/gen-check\.js';[\s\S]*\n {2}genCheck,\n/,
    );
    expect(readFileSync(join(pkg, 'src', 'names.ts'), 'utf8')).toMatch(/'gen_check',/);
    expect(readFileSync(join(pkg, 'src', 'index.ts'), 'utf8')).toMatch(
      /export \* from '\.\/samplers\/gen-check\.js';/,
    );
    expect(readFileSync(join(pkg, 'README.md'), 'utf8')).toMatch(/\n\| `gen_check` \|/);

    run(BIOME, ['check', 'packages/samplers/src'], root);
    run(process.execPath, [TSC, '--noEmit', '-p', 'packages/samplers'], root);
    const out = run(
      process.execPath,
      [VITEST, 'run', 'src/conformance.test.ts', 'src/names.test.ts', '--reporter=verbose'],
      pkg,
    );
    // order of convergence, point mass, leaks, seeds: each names the new sampler
    expect(passedNaming(out, 'gen_check')).toBeGreaterThanOrEqual(4);
    expect(out).not.toMatch(/\bfailed\b/);
  }, 300_000);
});

describe('pnpm new schedule', () => {
  it('writes a schedule that passes biome, tsc and the conformance suite as generated', () => {
    const root = copyFor('schedules');
    const pkg = join(root, 'packages', 'schedules');
    run(process.execPath, ['scripts/new.mjs', 'schedule', 'gen-check'], root);

    expect(readFileSync(join(pkg, 'src', 'registry.ts'), 'utf8')).toMatch(
      /'gen-check': \(p\) => new GenCheckSchedule\(p\)/,
    );
    expect(readFileSync(join(pkg, 'src', 'index.ts'), 'utf8')).toMatch(
      /export \{ GenCheckSchedule, type GenCheckScheduleParams \} from '\.\/continuous\/gen-check\.js';/,
    );
    expect(readFileSync(join(pkg, 'README.md'), 'utf8')).toMatch(
      /\n\| `gen-check` \| `GenCheckSchedule` \|/,
    );
    expect(readFileSync(join(pkg, 'src', 'names.ts'), 'utf8')).toMatch(/'gen-check',/);

    run(BIOME, ['check', 'packages/schedules/src'], root);
    run(process.execPath, [TSC, '--noEmit', '-p', 'packages/schedules'], root);
    const out = run(
      process.execPath,
      [VITEST, 'run', 'src/registry.test.ts', 'src/names.test.ts', '--reporter=verbose'],
      pkg,
    );
    // monotone logSNR, levels, inverses, derivative, tensors, range errors, config round trip
    expect(passedNaming(out, 'gen-check')).toBeGreaterThanOrEqual(7);
    expect(out).not.toMatch(/\bfailed\b/);
  }, 300_000);
});
