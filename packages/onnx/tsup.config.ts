import { packageConfig } from '@diffuse/config/tsup';

export default packageConfig({
  entry: ['src/index.ts', 'src/worker.ts', 'src/web.ts'],
  external: [
    'onnxruntime-node',
    'onnxruntime-web',
    'onnxruntime-web/wasm',
    'onnxruntime-web/webgpu',
    'onnxruntime-web/all',
  ],
});
