/**
 * `@diffuse/backend/wasm`: enables the wasm backend in a bundle. Import it once, before `initBackend`:
 *
 * @example
 * import '@diffuse/backend/wasm';
 * import { initBackend } from '@diffuse/backend';
 * await initBackend('wasm');
 */
import * as pkg from '@tensorflow/tfjs-backend-wasm';
import { provideBackendPackage } from '../packages.js';

provideBackendPackage('wasm', pkg);
