// The example instance config shows defaults in commented lines: they must be
// the schema's, and every live line must be a valid setting.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { resolveSettings } from '../../src/settings/resolve.js';
import { schema, settingNames, type SettingName } from '../../src/settings/schema.js';

const file = path.resolve(import.meta.dirname, '../../packaging/examples/instance.ini');

it('its commented lines show the schema defaults (or, for unset settings, a valid example)', () => {
  const shown = [...readFileSync(file, 'utf8').matchAll(/^# ([a-z_]+) = (.*)$/gm)].filter(([, key]) =>
    settingNames.includes(key as SettingName),
  );
  expect(shown.length).toBeGreaterThan(10);
  for (const [, key, value] of shown) {
    const spec = schema[key as SettingName];
    const shownDefault = spec.kind.format(spec.default as never);
    if (shownDefault === '') expect(() => spec.kind.parse(value!), key).not.toThrow();
    else expect(value, key).toBe(shownDefault);
  }
});

it('it is a valid config file', () => {
  expect(() => resolveSettings({ config: file }, {})).not.toThrow();
});
