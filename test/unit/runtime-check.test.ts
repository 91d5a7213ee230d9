import { expect, it } from 'vitest';
import { unsupportedRuntime } from '../../src/runtime-check.js';

it('refuses a Node.js without --disable-sigusr1 or type stripping (Node 20 under npx) in one line saying which it needs', () => {
  const node20 = unsupportedRuntime('v20.20.2', new Set(['--max-old-space-size']), {});
  expect(node20).toBe(
    'tsgunicorn needs Node.js 24 (or 22.18+); this is Node.js v20.20.2: run it with Node 24 (npx uses the node on your PATH), or install the Debian package, which brings its own',
  );
  expect(unsupportedRuntime('v22.12.0', new Set(['--disable-sigusr1']), {})).toMatch(/needs Node\.js 24/);
  expect(unsupportedRuntime('v24.21.0', new Set(['--disable-sigusr1']), { typescript: 'strip' })).toBeNull();
  // Type stripping turned off is still this Node: the .ts check names that case.
  expect(unsupportedRuntime('v24.21.0', new Set(['--disable-sigusr1']), { typescript: false })).toBeNull();
  expect(unsupportedRuntime()).toBeNull();
});
