// Shared tsup preset: every published package builds ESM + CJS + .d.ts from src/index.ts, with
// tfjs (a peer dependency) and every other dependency external.
//
// Shims: CommonJS output gets tsup's `import.meta.url` shim (Node-only code such as worker paths
// uses it). ES module output gets none: tsup's ESM shim adds `import 'path'; import 'url';` to every
// file, which breaks browser bundles (esbuild --platform=browser cannot resolve them), and no
// package source uses `__dirname` / `__filename`.
import { defineConfig } from 'tsup';

/** @param {import('tsup').Options} [overrides] */
export function packageConfig(overrides = {}) {
  const { esbuildOptions, ...rest } = overrides;
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
    ...rest,
    esbuildOptions(options, context) {
      if (context.format === 'esm' && options.inject) {
        options.inject = options.inject.filter((file) => !/esm_shims\.js$/.test(file));
      }
      esbuildOptions?.(options, context);
    },
  });
}
