// The built package (dist/, as published; test/dist.test.ts loads it from a scratch project): no copy of tfjs-core inside it, and gradients registered
// in Node ESM and CommonJS through the `node` export condition. Runs after `pnpm build` (turbo's
// test task depends on build).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const distFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? distFiles(join(dir, e.name))
      : /\.(c?js)$/.test(e.name)
        ? [join(dir, e.name)]
        : [],
  );

// conv2d's filter gradient (a backprop op tfjs-core does not export), a mean's, avgPool's.
const probe = (backend: string) => `
  const [dx, df] = tf.grads((a, b) => tf.sum(tf.conv2d(a, b, 1, 'same')))([tf.ones([1, 4, 4, 2]), tf.ones([3, 3, 2, 1])]);
  const dp = tf.grad((a) => tf.mean(tf.avgPool(a, 2, 2, 'valid')))(tf.ones([1, 4, 4, 1]));
  const out = { backend: tf.getBackend(), df: Array.from(df.dataSync()), dp: Array.from(dp.dataSync()), dx: dx.shape };
  console.log(JSON.stringify(out));
  void ${JSON.stringify(backend)};`;

function run(args: string[]): { backend: string; df: number[]; dp: number[]; dx: number[] } {
  const out = execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '');
}

// Each output of a 'same' 3x3 conv on a 4x4 image of ones touches 4, 6 or 9 inputs per channel:
// the filter gradient of sum(conv) at tap (i, j) counts the output positions that tap reaches.
const expectedDf = [9, 9, 12, 12, 9, 9, 12, 12, 16, 16, 12, 12, 9, 9, 12, 12, 9, 9];

describe('dist', () => {
  it('holds no tfjs-core engine, tensor or registry code', () => {
    const files = distFiles(join(root, 'dist'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.toMatch(/class Engine\b|class Tensor\b|class Variable\b/);
      expect(text, file).not.toMatch(/const ENGINE = getOrMakeEngine|function getGlobalNamespace/);
    }
  });

  it('the browser build leaves the gradient registrations to the app bundler', () => {
    expect(readFileSync(join(root, 'dist/index.js'), 'utf8')).toMatch(
      /^import '@tensorflow\/tfjs-core\/dist\/register_all_gradients';/m,
    );
    for (const file of ['dist/node/index.js', 'dist/node/index.cjs']) {
      expect(readFileSync(join(root, file), 'utf8')).not.toMatch(
        /(import|from|require\()\s*['"]@tensorflow\/tfjs-core\/dist\//,
      );
    }
  });

  it('registers gradients for training in Node ESM (wasm)', () => {
    const r = run([
      '--input-type=module',
      '-e',
      `import * as tf from '@tensorflow/tfjs-core'; import { initBackend } from '@diffuse/backend';
       await initBackend('wasm'); ${probe('wasm')}`,
    ]);
    expect(r.backend).toBe('wasm');
    expect(r.df).toEqual(expectedDf);
    expect(r.dp).toEqual(new Array(16).fill(1 / 16));
  });

  it('registers gradients for training in Node CommonJS (cpu)', () => {
    const r = run([
      '-e',
      `const tf = require('@tensorflow/tfjs-core'); const { initBackend } = require('@diffuse/backend');
       initBackend('cpu').then(() => { ${probe('cpu')} });`,
    ]);
    expect(r.backend).toBe('cpu');
    expect(r.df).toEqual(expectedDf);
  });
});
