// The README's settings table is derived from the schema: it must not drift.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { settingsTableMarkdown } from '../../src/settings/docs.js';

it('README.md carries the settings table generated from the schema (npm run docs)', () => {
  const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
  const table = /<!-- settings:start -->\n([\s\S]*?)\n<!-- settings:end -->/.exec(readme)?.[1];
  expect(table).toBe(settingsTableMarkdown());
});
