// Node entry (built twice: ES module and CommonJS): wasm backend, the program, its result as JSON.
import { initBackend } from '@diffuse/backend';
import { program } from './program.js';

initBackend('wasm')
  .then(() => program())
  .then((r) => console.log(JSON.stringify(r)))
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
