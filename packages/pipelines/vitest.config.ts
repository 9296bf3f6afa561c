import { packageTestConfig } from '@diffuse/config/vitest';

export default packageTestConfig();
