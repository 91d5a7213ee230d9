// control_socket_group, checked where it is read (at start and on reload): a
// process that is not root may give a file it owns only to a group it is in
// (chown(2)), the packaged unit's PrivateUsers=yes maps no group but the
// service's own, and its SystemCallFilter= denies chown. A group the socket cannot be given to is refused with what to
// do, rather than leaving the socket 0600 and its group shut out.
import { chownSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { serviceUnit } from '../systemd/sandbox.js';

/** The GID of a group name or number; throws naming the group when /etc/group has no such name. */
export function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === group);
  if (!line) throw new Error(`no group ${JSON.stringify(group)} on this machine: create it (addgroup --system ${group}), or name another`);
  return Number(line.split(':')[2]);
}

/**
 * Why this process cannot give its control socket (to be made at `socketPath`)
 * to `group`, or null when it can: tried on a scratch file beside it, since
 * besides membership the unit's sandbox (PrivateUsers=yes, and
 * SystemCallFilter=~@privileged, which holds chown) decides.
 */
export function socketGroupProblem(group: string, socketPath: string, env: NodeJS.ProcessEnv = process.env): string | null {
  let gid: number;
  try {
    gid = groupId(group);
  } catch (err) {
    return (err as Error).message;
  }
  const member = process.getuid?.() === 0 || process.getgid?.() === gid || process.getgroups?.().includes(gid);
  const refused = member ? chownRefused(path.dirname(socketPath), gid) : 'not a member';
  if (refused === null) return null;
  const user = userInfo().username;
  const unit = env.INVOCATION_ID ? serviceUnit() : null;
  const fix = unit
    ? `${unit}'s sandbox (PrivateUsers=yes, SystemCallFilter=) keeps it from other groups; to let group ${group} in: systemctl edit ${unit}, add "[Service]", "PrivateUsers=no", "SupplementaryGroups=${group}" and "SystemCallFilter=@chown", then systemctl restart ${unit}`
    : `add ${user} to it (adduser ${user} ${group}) and start the server again`;
  const why = member ? `chown to it fails (${refused})` : `it is not a group of ${user}, who runs this server`;
  return `group ${group} (gid ${gid}): ${why}, so the control socket cannot be given to that group: ${fix}`;
}

// null when a file in `dir` can be given to `gid`; else the error code. A missing directory is the socket's own problem, said where it is made.
function chownRefused(dir: string, gid: number): string | null {
  const probe = path.join(dir, `.group-check-${process.pid}`);
  try {
    writeFileSync(probe, '', { mode: 0o600 });
  } catch {
    return null;
  }
  try {
    chownSync(probe, -1, gid);
    return null;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  } finally {
    rmSync(probe, { force: true });
  }
}
