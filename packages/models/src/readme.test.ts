/** Runs every TypeScript example in README.md against this package's source, so the README stays runnable. */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(resolve(here, '..', 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)]
  .map((m) => m[1]!)
  .filter((b) => b.includes('import '));

describe('README examples run', () => {
  afterEach(() => vi.restoreAllMocks());
  it('has examples', () => expect(blocks.length).toBeGreaterThanOrEqual(5));

  it.each(blocks.map((b, i) => [i, b] as const))('example %i', async (i, code) => {
    const logs: unknown[][] = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      logs.push(args);
    });
    const file = resolve(here, `.readme-example-${i}.ts`);
    const source = code
      .replaceAll("'@diffuse/models/node'", "'./node.js'")
      .replaceAll("'@diffuse/models'", "'./index.js'");
    writeFileSync(file, `${source}\nexport {};\n`);
    try {
      await import(/* @vite-ignore */ `${file}?t=${Date.now()}`);
    } finally {
      rmSync(file, { force: true });
    }
    expect(logs.length).toBeGreaterThan(0);
    if (code.includes('gm.x0Array([1.6, 0.3]')) {
      // Isotropic components: C = (alpha^2 0.25 + sigma^2) I, x0_k = mu_k + alpha 0.25 (x - alpha mu_k) / c,
      // responsibilities from the squared distances to alpha mu_k.
      const c = 0.64 * 0.25 + 0.36;
      const d0 = (1.6 + 1.6) ** 2 + 0.09;
      const d1 = 0.09;
      const r0 = 1 / (1 + Math.exp((d0 - d1) / (2 * c)));
      const x0k = (mu: number) => [
        mu + (0.8 * 0.25 * (1.6 - 0.8 * mu)) / c,
        (0.8 * 0.25 * 0.3) / c,
      ];
      const expected = [0, 1].map((i) => r0 * x0k(-2)[i]! + (1 - r0) * x0k(2)[i]!);
      const got = logs[0]![0] as Float64Array;
      expect(Math.abs(got[0]! - expected[0]!)).toBeLessThan(1e-12);
      expect(Math.abs(got[1]! - expected[1]!)).toBeLessThan(1e-12);
      expect((logs[2]![0] as number[][])[0]![1]).toBeGreaterThan(0.999);
    }
    if (code.includes('saveModel(net)')) expect(logs.at(-1)![0]).toEqual(new Uint8Array([1]));
    if (code.includes('loss ')) expect(logs[0]![0]).toMatch(/^step 0: loss \d/);
    if (code.includes('modelParameterShapes(')) {
      expect(logs[0]).toEqual([20, ['embed.fc1.weight', [64, 64]]]);
      expect(logs[1]).toEqual(['maxParams']);
    }
  });
});
