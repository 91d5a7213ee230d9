// What `npm run package` and `npm test` do about a missing Debian package when
// they cannot install it: one line naming it and the command to run.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const deps = pathToFileURL(path.resolve(import.meta.dirname, '../../packaging/debian-deps.mjs')).href;

describe('ensurePackages', () => {
  it('names the missing packages and the apt-get line when it may not install them', () => {
    const script = `const { ensurePackages } = await import(${JSON.stringify(deps)});
try { ensurePackages(['dpkg', 'tsgunicorn-test-no-such-package'], 'npm run package'); } catch (err) { process.stdout.write(err.message); }`;
    // As root it would install: the case is an ordinary user's, so run as nobody (setpriv, util-linux).
    const asRoot = process.getuid?.() === 0;
    const [cmd, args] = asRoot
      ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script]]
      : [process.execPath, ['--input-type=module', '-e', script]];
    const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: '/' });
    expect(r.stdout).toBe(
      "npm run package needs Debian's tsgunicorn-test-no-such-package: run sudo apt-get install tsgunicorn-test-no-such-package",
    );
  });
});
