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
  it('has examples', () => expect(blocks.length).toBeGreaterThanOrEqual(5));

  it.each(blocks.map((b, i) => [i, b] as const))('example %i', async (i, code) => {
    const logs: unknown[][] = [];
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      logs.push(args);
    });
    const file = resolve(here, `.readme-example-${i}.ts`);
    writeFileSync(file, `${code.replaceAll("'@diffuse/schedules'", "'./index.js'")}\nexport {};\n`);
    try {
      await import(/* @vite-ignore */ `${file}?t=${Date.now()}`);
    } finally {
      rmSync(file, { force: true });
    }
    expect(logs.length).toBeGreaterThan(0);
    const text = JSON.stringify(logs);
    if (code.includes('sd.alphasCumprod[999]')) expect(logs[0]).toEqual([0.0046600960195064545]);
    if (code.includes('[901, 801, ..., 1]'))
      expect(text).toContain('[901,801,701,601,501,401,301,201,101,1]');
    if (code.includes('vdm.logSNR(0), vdm.logSNR(1)')) expect(logs[1]).toEqual([13.3, -5]);
    if (code.includes("'v_prediction'")) expect(logs.at(-1)).toEqual([981, 'v_prediction']);
  });
});
