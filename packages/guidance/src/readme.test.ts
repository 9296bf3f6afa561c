/** Runs every TypeScript example in README.md against this package's source, so the README stays runnable. */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(resolve(here, '..', 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

describe('README examples run', () => {
  afterEach(() => vi.restoreAllMocks());
  it('has examples', () => expect(blocks.length).toBeGreaterThanOrEqual(2));

  it.each(blocks.map((b, i) => [i, b] as const))('example %i', async (i, code) => {
    const logs: unknown[][] = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      logs.push(args);
    });
    const file = resolve(here, `.readme-example-${i}.ts`);
    writeFileSync(file, `${code.replaceAll("'@diffuse/guidance'", "'./index.js'")}\nexport {};\n`);
    try {
      await import(/* @vite-ignore */ `${file}?t=${Date.now()}`);
    } finally {
      rmSync(file, { force: true });
    }
    expect(logs.length).toBeGreaterThan(0);
    if (code.includes("'CFG accuracy'")) {
      expect(logs[0]![0]).toBe('CFG accuracy');
      expect(logs[0]![1]).toBeGreaterThan(0.8); // guided at s = 3 on overlapping classes (measured 0.88)
    }
    if (code.includes('repaint(')) expect(logs.at(-1)).toEqual([[8, 4, 4, 1]]);
  });
});
