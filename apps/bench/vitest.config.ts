import { packageTestConfig } from '@diffuse/config/vitest';

// The end-to-end test runs the whole `--quick` suite, which takes a while on a shared 2-core machine.
export default packageTestConfig({ testTimeout: 600_000 });
