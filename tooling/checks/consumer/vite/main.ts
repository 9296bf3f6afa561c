// The vite app: the wasm files come in as `?url` imports (the documented path; they resolve because
// the app depends on @tensorflow/tfjs-backend-wasm itself).
import '@diffuse/backend/wasm';
import { initBackend } from '@diffuse/backend';
import wasm from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { program } from '../program.js';

const w = window as unknown as { result?: unknown; failure?: string };
initBackend('wasm', {
  wasmPaths: {
    'tfjs-backend-wasm.wasm': wasm,
    'tfjs-backend-wasm-simd.wasm': wasmSimd,
    'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded,
  },
})
  .then(() => program())
  .then((r) => {
    w.result = r;
  })
  .catch((e: Error) => {
    w.failure = `${e.message}\n${e.stack}`;
  });
