import { defineConfig } from 'tsup';

// Two outputs (the build script empties dist/ first, so neither config cleans):
// - dist/cli.js: the Node command line, dependencies external;
// - dist/browser/page.global.js: the page `--browser` serves to headless Chromium, everything bundled.
export default defineConfig([
  {
    entry: ['src/cli.ts'],
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
    clean: false,
    shims: true,
    splitting: false,
    banner: { js: '#!/usr/bin/env node' },
  },
  {
    entry: { page: 'src/browser/page.ts' },
    outDir: 'dist/browser',
    format: ['iife'],
    platform: 'browser',
    target: 'es2022',
    clean: false,
    sourcemap: false,
    splitting: false,
    noExternal: [/.*/],
    // Upstream dist files import 'path' and 'url' for tsup's Node shims only; the page never uses them.
    esbuildOptions(o) {
      o.alias = { path: './src/browser/empty.ts', url: './src/browser/empty.ts' };
    },
  },
]);
