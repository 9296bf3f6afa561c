import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig({
  // The MNIST loader imports JSON with import attributes (`with { type: 'json' }`), which Node
  // requires. esbuild keeps them only at target esnext (the source uses nothing newer than ES2022
  // otherwise), and tsup's rollup tree-shaking pass rewrites them to the deprecated `assert` form
  // that Node 22 rejects, so this package skips that pass (esbuild still drops dead code).
  target: 'esnext',
  treeshake: false,
});
