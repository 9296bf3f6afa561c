// Shared vitest preset: tests sit beside the code (src/**/*.test.ts) and run in Node.
// tfjs backends are process-global, so test files run in separate forked processes.
import { defineConfig } from 'vitest/config';

/** @param {import('vitest/config').UserConfig['test']} [overrides] */
export function packageTestConfig(overrides = {}) {
  return defineConfig({
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      environment: 'node',
      pool: 'forks',
      testTimeout: 120_000,
      hookTimeout: 120_000,
      ...overrides,
    },
  });
}
