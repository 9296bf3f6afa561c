import { packageConfig } from '@diffuse/config/tsup';
import { tfjsGradientsPlugin } from './scripts/tfjs-gradients-plugin.mjs';

// Two builds of the library (the build script empties dist/ first; none cleans):
// - dist/index.{js,cjs}: for bundlers and browsers. `import '@tensorflow/tfjs-core/dist/register_all_gradients'`
//   stays external: bundlers resolve that ES module inside the app's own tfjs-core.
// - dist/node/index.{js,cjs}: the `node` export condition. Node cannot load that file, so the gradient
//   registrations are bundled, wired to the public `@tensorflow/tfjs-core` (no second Engine or Tensor;
//   see scripts/tfjs-gradients-plugin.mjs).
// and the per-backend entries (`@diffuse/backend/wasm`, ...: dist/<name>.{js,cjs}), each of which
// imports one optional tfjs backend package and hands it to `initBackend`.
const backends = ['cpu', 'wasm', 'webgl', 'webgpu'];

export default [
  packageConfig({ clean: false }),
  packageConfig({
    entry: Object.fromEntries(backends.map((b) => [b, `src/entries/${b}.ts`])),
    clean: false,
  }),
  packageConfig({
    entry: { index: 'src/index.ts' },
    outDir: 'dist/node',
    clean: false,
    dts: false,
    noExternal: [/^@tensorflow\/tfjs-core\/dist\//],
    esbuildPlugins: [tfjsGradientsPlugin()],
  }),
];
