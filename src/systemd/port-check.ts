// `tsgunicorn check-ports NAME`, the ExecStartPre= of tsgunicorn@NAME.socket:
// when an address of the socket unit is taken, systemd fails the socket unit
// with "Address already in use" in that unit's journal only, and the service
// with a mere "Dependency failed". This says it at priority err in the journal
// of the service itself, with the program that holds the port and what to do.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { EXIT } from '../ipc.js';
import { formatAddress, type TcpAddress } from '../settings/kinds.js';
import { socketUnitAddresses } from './bind-check.js';
import { openJournal } from './journal.js';

const LOG_ERR = 3;

/** Null when `address` can be listened on now; else the errno code (EADDRINUSE…). */
function tryListen({ host, port }: TcpAddress): Promise<string | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    // As systemd listens: dual-stack on [::], SO_REUSEADDR (node's default).
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

/** "nginx.service (pid 812, nginx)" for the process that listens on TCP `port`, or null when /proc does not say. */
export function portHolder(port: number, proc = '/proc'): string | null {
  const inodes = new Set<string>();
  for (const table of ['net/tcp', 'net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(`${proc}/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN.
      if (f[3] === '0A' && parseInt(f[1]?.split(':')[1] ?? '', 16) === port) inodes.add(f[9]!);
    }
  }
  if (inodes.size === 0) return null;
  for (const pid of readdirSync(proc).filter((p) => /^\d+$/.test(p))) {
    let fds: string[];
    try {
      fds = readdirSync(`${proc}/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target = '';
      try {
        target = readlinkSync(`${proc}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (!inode || !inodes.has(inode)) continue;
      const comm = readOr(`${proc}/${pid}/comm`).trim();
      const unit = /\/([^/]+\.(?:service|scope|socket))$/m.exec(readOr(`${proc}/${pid}/cgroup`))?.[1];
      return `${unit ? `${unit} ` : ''}(pid ${pid}${comm ? `, ${comm}` : ''})`;
    }
  }
  return null;
}

function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The exit code: 0 when every TCP address of tsgunicorn@NAME.socket is free, 2 (after the err entry) when one is not. */
export async function checkPorts(name: string): Promise<number> {
  const service = `tsgunicorn@${name}.service`;
  const socket = `tsgunicorn@${name}.socket`;
  const addresses = (socketUnitAddresses(socket) ?? []).filter((a): a is TcpAddress => a.kind === 'tcp');
  const problems: string[] = [];
  for (const address of addresses) {
    const code = await tryListen(address);
    if (code === null) continue;
    const holder = code === 'EADDRINUSE' ? portHolder(address.port) : null;
    const why = code === 'EADDRINUSE' ? `is in use by ${holder ?? 'another program'}` : `cannot be listened on (${code})`;
    problems.push(`${formatAddress(address)} ${why}`);
  }
  if (problems.length === 0) return EXIT.OK;
  const message =
    `${service} cannot start: ${problems.join('; ')}. Stop that program, or set another bind in /etc/tsgunicorn/${name}.ini ` +
    `and run systemctl daemon-reload; then: systemctl start ${service}`;
  // OBJECT_SYSTEMD_UNIT from root puts the entry in `journalctl -u SERVICE` (journalctl(1), -u).
  const sent = openJournal(name)?.send(LOG_ERR, message, { OBJECT_SYSTEMD_UNIT: service });
  if (!sent) process.stderr.write(`${message}\n`);
  return EXIT.CONFIG;
}
