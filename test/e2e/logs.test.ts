// Log files an admin can manage: the documented locations work under the
// unit's sandbox, the package's logrotate config rotates them and has the
// master reopen them (opening no inspector), they are readable by group adm and
// by no one else, and a location the sandbox keeps read-only is named with the
// directories that are writable.
import { describe, expect, it } from 'vitest';
import { diagnose, EXAMPLE_APP, journalEntries, listeningPorts, property, start, useMachine } from './fixture.js';
import { SUITES, waitFor, type Machine } from './harness.js';
import { request } from '../helpers/http.js';

const unit = 'tsgunicorn@myapp.service';
const logDir = '/var/log/tsgunicorn/myapp';

async function fileText(m: Machine, file: string): Promise<string> {
  const r = await m.exec(['cat', file]);
  return r.code === 0 ? r.stdout : '';
}

async function waitForLine(m: Machine, file: string, text: string): Promise<void> {
  await waitFor(
    async () => ((await fileText(m, file)).includes(text) ? true : undefined),
    10_000,
    () => `${file} has no line with ${text}`,
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}\n${await diagnose(m, unit)}`);
  });
}

/** Whether `user` (with only the groups given) can read `file`. */
async function canRead(m: Machine, user: string, file: string): Promise<boolean> {
  return (await m.exec(['setpriv', `--reuid=${user}`, `--regid=${user}`, '--init-groups', 'cat', file])).code === 0;
}

describe.each(SUITES)('%s: log files', (suite) => {
  const machine = useMachine(suite);

  it('in /var/log/tsgunicorn/NAME: written, rotated by the logrotate config, reopened on USR1 by the master', async () => {
    const m = machine();
    await m.writeFile(
      '/etc/tsgunicorn/myapp.ini',
      `app = ${EXAMPLE_APP}\nworkers = 2\naccesslog = ${logDir}/access.log\nerrorlog = ${logDir}/error.log\n`,
    );
    await start(m, unit);
    const mainPid = await property(m, unit, 'MainPID');
    await request('http://127.0.0.1:8000/before-logrotate');
    await waitForLine(m, `${logDir}/access.log`, '/before-logrotate');

    const rotate = await m.exec(['logrotate', '-f', '/etc/logrotate.d/tsgunicorn']);
    expect({ code: rotate.code, output: rotate.stdout + rotate.stderr }).toEqual({ code: 0, output: '' });
    expect(await fileText(m, `${logDir}/access.log.1`)).toContain('/before-logrotate');
    // The postrotate USR1 reached the master, which logged it to the file it was rotating out.
    await waitForLine(m, `${logDir}/error.log.1`, 'Handling signal: usr1');
    await request('http://127.0.0.1:8000/after-logrotate');
    await waitForLine(m, `${logDir}/access.log`, '/after-logrotate');
    expect(await fileText(m, `${logDir}/access.log.1`)).not.toContain('/after-logrotate');
    expect(await property(m, unit, 'MainPID')).toBe(mainPid);
    expect(await listeningPorts(m, unit)).toEqual([8000]);
  });

  it('are readable by group adm and by no other user', async () => {
    const m = machine();
    await m.run(['useradd', '--no-create-home', '--groups', 'adm', 'ann']);
    await m.run(['useradd', '--no-create-home', 'bob']);
    for (const file of [`${logDir}/access.log`, `${logDir}/error.log`]) {
      expect({ file, ann: await canRead(m, 'ann', file), bob: await canRead(m, 'bob', file) }).toEqual({ file, ann: true, bob: false });
    }
  });

  it('outside the instance log directory: refused at start (exit 2), pointing into the log directory, never opening /var/log', async () => {
    const m = machine();
    const outside = '/var/log/tsgunicorn/myapp-access.log';
    await m.writeFile('/etc/tsgunicorn/myapp.ini', `app = ${EXAMPLE_APP}\nworkers = 1\naccesslog = ${outside}\n`);
    expect((await m.systemctl('restart', unit)).code).not.toBe(0);
    expect(await property(m, unit, 'ExecMainStatus')).toBe('2');
    const entries = (await journalEntries(m, unit, '-p', 'err')).filter((e) =>
      e.MESSAGE?.includes(`accesslog: ${outside} cannot be written`),
    );
    expect(entries.length, await diagnose(m, unit)).toBe(1);
    expect(entries[0]!.MESSAGE).toMatch(
      new RegExp(
        `/etc/tsgunicorn/myapp\\.ini:3: accesslog: ${outside} cannot be written \\((EROFS|EACCES)\\): tsgunicorn@myapp\\.service's sandbox \\(ProtectSystem=strict\\) lets it write under /var/log only in its log directory ${logDir}; write the file there instead: ${logDir}/myapp-access\\.log`,
      ),
    );
    expect(entries[0]!.MESSAGE).not.toContain('ReadWritePaths');
  });
});
