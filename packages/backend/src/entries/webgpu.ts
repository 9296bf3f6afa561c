/**
 * `@diffuse/backend/webgpu`: enables the webgpu backend in a bundle. Import it once, before `initBackend`:
 *
 * @example
 * import '@diffuse/backend/webgpu';
 * import { initBackend } from '@diffuse/backend';
 * await initBackend('webgpu');
 */
import * as pkg from '@tensorflow/tfjs-backend-webgpu';
import { provideBackendPackage } from '../packages.js';

provideBackendPackage('webgpu', pkg);
