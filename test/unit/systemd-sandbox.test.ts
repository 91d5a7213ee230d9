// The sandbox hint added to errors a tsgunicorn@NAME service gets from its own
// sandbox (the e2e suite shows them under the real unit).
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sandboxHint } from '../../src/systemd/sandbox.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-sandbox-'));
const cgroup = path.join(dir, 'cgroup');
writeFileSync(cgroup, '0::/system.slice/system-tsgunicorn.slice/tsgunicorn@myapp.service\n');
const service = { INVOCATION_ID: 'abc', LOGS_DIRECTORY: '/var/log/tsgunicorn/myapp', STATE_DIRECTORY: '/var/lib/tsgunicorn/myapp' };
const error = (code: string) => Object.assign(new Error(code), { code });

describe('sandboxHint', () => {
  it('names ProtectHome and its drop-in for a path under /home', () => {
    expect(sandboxHint('/home/ann/app', error('EACCES'), service, cgroup)).toBe(
      ": tsgunicorn@myapp.service's sandbox (ProtectHome=yes) hides /home, /root, /run/user; to serve from /home: " +
        'systemctl edit tsgunicorn@myapp.service, add "[Service]" and "ProtectHome=read-only"',
    );
  });

  it('names the writable directories and the ReadWritePaths= drop-in for EROFS', () => {
    expect(sandboxHint('/srv/myapp/data/cache.json', error('EROFS'), service, cgroup)).toBe(
      ": tsgunicorn@myapp.service's sandbox (ProtectSystem=strict) makes the file system read-only for it except " +
        '/var/log/tsgunicorn/myapp (logs), /var/lib/tsgunicorn/myapp (state); to write to /srv/myapp/data: ' +
        'systemctl edit tsgunicorn@myapp.service, add "[Service]" and "ReadWritePaths=/srv/myapp/data"',
    );
  });

  it('never suggests opening /var/log: a file there belongs in the log directory', () => {
    for (const [file, code] of [
      ['/var/log/myapp-access.log', 'EACCES'],
      ['/var/log/tsgunicorn/myapp-access.log', 'EROFS'],
    ] as const) {
      const hint = sandboxHint(file, error(code), service, cgroup);
      expect(hint).not.toContain('ReadWritePaths');
      expect(hint).toBe(
        ": tsgunicorn@myapp.service's sandbox (ProtectSystem=strict) lets it write under /var/log only in its log directory " +
          `/var/log/tsgunicorn/myapp; write the file there instead: /var/log/tsgunicorn/myapp/${path.basename(file)}`,
      );
    }
  });

  it('says nothing outside a systemd service, or for other errors', () => {
    expect(sandboxHint('/home/ann/app', error('EACCES'), {}, cgroup)).toBe('');
    expect(sandboxHint('/srv/app', error('ENOENT'), service, cgroup)).toBe('');
    expect(sandboxHint('/srv/app', error('EACCES'), service, cgroup)).toBe('');
  });
});
