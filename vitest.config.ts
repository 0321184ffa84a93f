import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Unit tests sit next to their package; tests that cross packages or talk
    // to real services (Redis, HTTP, ONNX fixtures) live in test/.
    include: [
      'packages/*/test/**/*.test.ts',
      'packages/*/src/**/*.test.ts',
      'services/*/test/**/*.test.ts',
      'services/*/src/**/*.test.ts',
      'test/**/*.test.ts',
    ],
    // Real child processes, Python and ONNX sessions on a 2-core machine.
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
