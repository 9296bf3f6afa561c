// Browser entry bundled by `esbuild --bundle --platform=browser`: the page serves tfjs' wasm files
// under /wasm/; the result lands on `window.result` (or `window.failure`).
import '@diffuse/backend/wasm';
import { initBackend } from '@diffuse/backend';
import { program } from '../program.js';

const w = window as unknown as { result?: unknown; failure?: string };
initBackend('wasm', { wasmPaths: '/wasm/' })
  .then(() => program())
  .then((r) => {
    w.result = r;
  })
  .catch((e: Error) => {
    w.failure = `${e.message}\n${e.stack}`;
  });
