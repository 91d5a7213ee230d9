// Once per `npm test`: what the tests need beyond npm's packages, got on a
// fresh machine by the test command itself (see packaging/debian-deps.mjs).
import path from 'node:path';

export async function setup(): Promise<void> {
  const deps = await import('../packaging/debian-deps.mjs');
  deps.ensureAddons();
  const dir = deps.ensurePrometheusTools();
  // The test workers inherit this process's environment.
  if (dir) process.env.PATH = `${dir}${path.delimiter}${process.env.PATH ?? ''}`;
}
