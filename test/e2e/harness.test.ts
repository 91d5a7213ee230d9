// The harness itself: a container boots the suite's systemd, runs commands with
// a clean environment, starts from the cached rootfs every time, and leaves no
// process or mount behind when stopped.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { boot, SUITES } from './harness.js';

const systemdVersion = { bookworm: 252, bullseye: 247 } as const;

describe.each(SUITES)('%s container', (suite) => {
  it(`boots systemd ${systemdVersion[suite]} as PID 1, runs commands, and stops without leftovers`, async () => {
    const m = await boot(suite);
    let stopped = false;
    try {
      expect(await m.run(['cat', '/proc/1/comm'])).toBe('systemd\n');
      expect(await m.run(['systemctl', '--version'])).toMatch(new RegExp(`^systemd ${systemdVersion[suite]} `));

      const failing = await m.exec('echo out; echo err >&2; exit 3');
      expect(failing).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
      expect((await m.exec(['printenv', 'HOME'])).code).toBe(1);

      await m.writeFile('/srv/probe/file.txt', 'written by the test\n');
      expect(await m.run(['cat', '/srv/probe/file.txt'])).toBe('written by the test\n');

      const root = m.root;
      const pid = m.pid;
      await m.stop();
      stopped = true;
      expect(existsSync(`/proc/${pid}`)).toBe(false);
      expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(root);
      expect(existsSync(root)).toBe(false);
    } finally {
      if (!stopped) await m.stop();
    }
  });

  it('starts each container from the clean cached rootfs', async () => {
    const m = await boot(suite);
    try {
      expect((await m.exec(['test', '-e', '/srv/probe/file.txt'])).code).toBe(1);
    } finally {
      await m.stop();
    }
  });
});
