import { defineConfig } from 'vitest/config';

// The end-to-end test builds nothing itself: `pnpm test` (turbo) runs `build` first, and the test
// serves `dist/` and drives Debian's chromium through playwright-core.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 240_000,
    hookTimeout: 120_000,
  },
});
