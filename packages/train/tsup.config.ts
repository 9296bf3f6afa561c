import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig({
  // the library, and the `diffuse-train` command (dist/cli.js; its recipes load on demand)
  // and the worker threads of ParallelGradients and ParallelDenoiser (dist/parallel-worker.js,
  // dist/parallel-denoiser-worker.js, found beside the library)
  entry: {
    index: 'src/index.ts',
    cli: 'src/cli/main.ts',
    'parallel-worker': 'src/parallel-worker.ts',
    'parallel-denoiser-worker': 'src/parallel-denoiser-worker.ts',
  },
  splitting: true,
  dts: { entry: { index: 'src/index.ts' } },
});
