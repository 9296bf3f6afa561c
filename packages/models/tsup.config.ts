import { packageConfig } from '@diffuse/config/tsup';

// Two entries: the browser-safe library, and `@diffuse/models/node` (filesystem helpers).
export default packageConfig({ entry: ['src/index.ts', 'src/node.ts'], splitting: true });
