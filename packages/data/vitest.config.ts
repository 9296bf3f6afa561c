import { packageTestConfig } from '@diffuse/config/vitest';

export default packageTestConfig({
  // The MNIST tests load the built package (`dist/`) natively in Node, as a user would: Vitest's
  // module runner drops JSON import attributes from dynamic imports, and pushing 21 MB of digit JSON
  // through its transform pipeline takes a minute.
  server: { deps: { external: [/\/packages\/data\/dist\//, /\/mnist\/src\/digits\//] } },
});
