import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig({
  entry: ['src/index.ts', 'src/worker.ts'],
  external: ['onnxruntime-node'],
});
