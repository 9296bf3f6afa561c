/**
 * The built package works from plain Node scripts, both as ESM and as CJS, exactly as a user who
 * installed it would load it (through the package's `exports` map, not the source).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A scratch project whose node_modules links this package and its tfjs peer. */
function scratch(): string {
  const dir = mkdtempSync(join(tmpdir(), 'diffuse-backend-'));
  mkdirSync(join(dir, 'node_modules', '@diffuse'), { recursive: true });
  mkdirSync(join(dir, 'node_modules', '@tensorflow'), { recursive: true });
  symlinkSync(pkgDir, join(dir, 'node_modules', '@diffuse', 'backend'));
  symlinkSync(
    resolve(pkgDir, 'node_modules', '@tensorflow', 'tfjs-core'),
    join(dir, 'node_modules', '@tensorflow', 'tfjs-core'),
  );
  return dir;
}

const body = (imp: string) => `${imp}
(async () => {
  const info = await initBackend('wasm');
  const g = tf.grad((x) => tf.sum(tf.square(x)))(tf.tensor1d([1, 2]));
  console.log(JSON.stringify({ name: info.name, simd: info.simd, grad: Array.from(await g.data()),
    noise: Array.from(Random.seed(1).normalArray(2)) }));
})();
`;

describe('dist entry points', () => {
  const run = (file: string, src: string) => {
    const dir = scratch();
    writeFileSync(join(dir, file), src);
    const out = execFileSync(process.execPath, [join(dir, file)], { cwd: dir, encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').pop()!);
  };

  it('imports from a plain ESM script', () => {
    const r = run(
      'main.mjs',
      body(
        `import * as tf from '@tensorflow/tfjs-core';\nimport { initBackend, Random } from '@diffuse/backend';`,
      ),
    );
    expect(r).toMatchObject({ name: 'wasm', simd: true, grad: [2, 4] });
  });

  it('requires from a plain CJS script, with the same noise', () => {
    const esm = run(
      'a.mjs',
      body(
        `import * as tf from '@tensorflow/tfjs-core';\nimport { initBackend, Random } from '@diffuse/backend';`,
      ),
    );
    const cjs = run(
      'main.cjs',
      body(
        `const tf = require('@tensorflow/tfjs-core');\nconst { initBackend, Random } = require('@diffuse/backend');`,
      ),
    );
    expect(cjs).toMatchObject({ name: 'wasm', simd: true, grad: [2, 4] });
    expect(cjs.noise).toEqual(esm.noise);
  });
});
