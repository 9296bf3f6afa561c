import { defineConfig } from 'vite';

/**
 * Cross-origin isolation (COOP + COEP): with it the page gets SharedArrayBuffer, so ONNX Runtime
 * Web runs its kernels on both cores (wasm threads). Every resource the page loads is its own, so
 * `require-corp` blocks nothing. A static host must send the same two headers (`public/_headers`
 * carries them for hosts that read that file); without them the page works, single-threaded.
 */
export const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
};

// Static, offline build: relative asset URLs (the page works from any folder or file server),
// the tfjs wasm binaries and the committed model weights are bundled as assets by `?url` imports.
export default defineConfig({
  base: './',
  build: {
    target: 'es2022',
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 4096,
    rollupOptions: {
      // The page runs ONNX Runtime Web's wasm build only (src/ort.ts); @diffuse/onnx/web also names
      // its WebGPU and all-providers builds, which would add 55 MB of wasm the page never loads.
      external: ['onnxruntime-web/webgpu', 'onnxruntime-web/all'],
    },
  },
  server: { host: '127.0.0.1', headers: ISOLATION_HEADERS },
  preview: { host: '127.0.0.1', headers: ISOLATION_HEADERS },
});
