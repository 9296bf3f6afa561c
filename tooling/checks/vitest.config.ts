import { packageTestConfig } from '@diffuse/config/vitest';

export default packageTestConfig({ include: ['test/**/*.test.ts'] });
