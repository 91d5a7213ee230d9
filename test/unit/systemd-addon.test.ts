import { describe, expect, it } from 'vitest';
import { loadAddon } from '../../src/systemd/addon.js';

describe('loadAddon', () => {
  it('returns null and says why when the addon cannot be loaded', () => {
    const messages: string[] = [];
    expect(loadAddon('tsgunicorn-addon-that-does-not-exist', (m) => messages.push(m))).toBeNull();
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/^tsgunicorn-addon-that-does-not-exist not loaded: Cannot find module/);
  });

  it('loads the built sd-notify addon', () => {
    const addon = loadAddon<{ sendState: unknown }>('sd-notify');
    expect(typeof addon?.sendState).toBe('function');
  });
});
