/**
 * Runs every ```ts block of README.md, so the examples users copy stay runnable. Each block is written
 * beside this file with `@diffuse/losses` pointing at the sources, imported, then deleted.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const readme = readFileSync(path.join(here, '..', 'README.md'), 'utf8');
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const dir = path.join(here, '.readme-examples');

afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('the README has examples', () => {
  expect(blocks.length).toBeGreaterThanOrEqual(5);
});

it.each(blocks.map((code, i) => [i + 1, code] as const))(
  'README example %i runs',
  async (i, code) => {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `example-${i}.ts`);
    writeFileSync(file, code.replaceAll("'@diffuse/losses'", "'../index.js'"));
    const lines: string[] = [];
    const log = console.log;
    console.log = (...args: unknown[]) => lines.push(args.map(String).join(' '));
    try {
      await import(/* @vite-ignore */ file);
    } finally {
      console.log = log;
    }
    expect(lines.length).toBeGreaterThan(0);
    log(`example ${i}:\n  ${lines.join('\n  ')}`);
  },
);
