import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig({
  // the library, and the `diffuse-train` command (dist/cli.js; its recipes load on demand)
  // and the worker thread of ParallelGradients (dist/parallel-worker.js, found beside the library)
  entry: {
    index: 'src/index.ts',
    cli: 'src/cli/main.ts',
    'parallel-worker': 'src/parallel-worker.ts',
  },
  splitting: true,
  dts: { entry: { index: 'src/index.ts' } },
});
