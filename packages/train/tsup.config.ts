import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig({
  // the library, and the `diffuse-train` command (dist/cli.js; its recipes load on demand)
  entry: { index: 'src/index.ts', cli: 'src/cli/main.ts' },
  splitting: true,
  dts: { entry: { index: 'src/index.ts' } },
});
