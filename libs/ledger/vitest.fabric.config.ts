import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// Suites that need the local Fabric network (`npm run fabric:up`), run by `npm run test:fabric`
// and network/ci.sh. Kept out of `npm test` by their `*.fabric-spec.ts` names. One file at a
// time: the fault tests stop and restart the shared peer and orderer.
export default defineConfig({
  plugins: [swc.vite({ module: { type: 'es6' } })],
  resolve: { conditions: ['source'] },
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['libs/ledger/**/*.fabric-spec.ts'],
    exclude: ['**/node_modules/**', 'dist/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    pool: 'forks',
  },
});
