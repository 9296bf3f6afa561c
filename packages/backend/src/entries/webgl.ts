/**
 * `@diffuse/backend/webgl`: enables the webgl backend in a bundle. Import it once, before `initBackend`:
 *
 * @example
 * import '@diffuse/backend/webgl';
 * import { initBackend } from '@diffuse/backend';
 * await initBackend('webgl');
 */
import * as pkg from '@tensorflow/tfjs-backend-webgl';
import { provideBackendPackage } from '../packages.js';

provideBackendPackage('webgl', pkg);
