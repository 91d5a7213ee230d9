// control_socket_group, checked where it is read (at start and on reload): a
// process that is not root may give a file it owns only to a group it is in
// (chown(2)), and the packaged unit's PrivateUsers=yes maps no group but the
// service's own. A group the socket cannot be given to is refused with what to
// do, rather than leaving the socket 0600 and its group shut out.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
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

/** Why this process cannot give its control socket to `group`, or null when it can. */
export function socketGroupProblem(group: string, env: NodeJS.ProcessEnv = process.env): string | null {
  let gid: number;
  try {
    gid = groupId(group);
  } catch (err) {
    return (err as Error).message;
  }
  if (process.getuid?.() === 0 || process.getgid?.() === gid || process.getgroups?.().includes(gid)) return null;
  const user = userInfo().username;
  const unit = env.INVOCATION_ID ? serviceUnit() : null;
  const fix = unit
    ? `${unit}'s sandbox (PrivateUsers=yes) maps no group but its own; to let group ${group} in: systemctl edit ${unit}, add "[Service]", "PrivateUsers=no" and "SupplementaryGroups=${group}", then systemctl restart ${unit}`
    : `add ${user} to it (adduser ${user} ${group}) and start the server again`;
  return `group ${group} (gid ${gid}) is not a group of ${user}, who runs this server, so its control socket cannot be given to that group: ${fix}`;
}
