import { defineConfig } from 'tsup';

// The app is a Node command-line program: one ESM entry, dependencies stay external.
export default defineConfig({
  entry: ['src/cli.ts'],
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  shims: true,
  splitting: false,
  banner: { js: '#!/usr/bin/env node' },
});
