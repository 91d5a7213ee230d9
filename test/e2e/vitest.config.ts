// End-to-end tests: real systemd in containers (see harness.ts). Run as root:
// npm run test:e2e. One file at a time: every container shares the host's
// network, so they would fight over port 8000.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['test/e2e/global-setup.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
  },
});
