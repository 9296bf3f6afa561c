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
    // Upstream dist files import 'path' and 'url' for tsup's Node shims, and @diffuse/train loads
    // 'fs/promises' for its file checkpoint store only; the page uses none of them.
    esbuildOptions(o) {
      const empty = './src/browser/empty.ts';
      o.alias = { path: empty, url: empty, fs: empty, 'fs/promises': empty };
    },
  },
]);
