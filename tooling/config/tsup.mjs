// Shared tsup preset: every published package builds ESM + CJS + .d.ts from src/index.ts.
// tfjs stays external (a peer dependency), except the deep import that registers gradients,
// which tfjs-core does not list in its exports map and so must be bundled.
import { defineConfig } from 'tsup';

/** @param {import('tsup').Options} [overrides] */
export function packageConfig(overrides = {}) {
  return defineConfig({
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'es2022',
    shims: true,
    splitting: false,
    treeshake: true,
    ...overrides,
  });
}
