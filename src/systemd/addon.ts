// Loads one of the optional native addons (sd-notify, systemd-journald) on first
// use. They are optional dependencies: where one is not built or libsystemd is
// missing, the feature it backs is off, the reason goes to `debug`, and nothing throws.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function loadAddon<T>(specifier: string, debug?: (msg: string) => void): T | null {
  try {
    return require(specifier) as T;
  } catch (err) {
    debug?.(`${specifier} not loaded: ${(err as Error).message}`);
    return null;
  }
}
