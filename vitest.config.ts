import { defineConfig } from 'vitest/config';

// Unit and integration tests; the systemd end-to-end suite has its own config
// (test/e2e/vitest.config.ts) and the benchmark is `npm run bench`.
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'],
    // Gets promtool on a fresh machine (the Prometheus rules tests need it).
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests run real servers with several processes each, and some
    // acceptance points are timed (a replacement worker within 1 s): one file at
    // a time keeps a 2-core machine's timings meaningful.
    fileParallelism: false,
  },
});
