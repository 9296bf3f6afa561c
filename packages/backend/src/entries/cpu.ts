/**
 * `@diffuse/backend/cpu`: enables the cpu backend in a bundle. Import it once, before `initBackend`:
 *
 * @example
 * import '@diffuse/backend/cpu';
 * import { initBackend } from '@diffuse/backend';
 * await initBackend('cpu');
 */
import * as pkg from '@tensorflow/tfjs-backend-cpu';
import { provideBackendPackage } from '../packages.js';

provideBackendPackage('cpu', pkg);
