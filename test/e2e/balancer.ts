// The load balancers of the fleet test, run on the host from the examples in
// packaging/examples with their addresses swapped for loopback ports: HAProxy
// (with an admin socket to read its view of the hosts) and nginx.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { runHost, tail, waitFor } from './harness.js';

const EXAMPLES = path.resolve(import.meta.dirname, '../../packaging/examples');
const HOSTS = ['10.0.0.11:8000', '10.0.0.12:8000'];

/** The example config with its two hosts, listen address and trusted subnet replaced. */
function example(file: string, replacements: Array<[string, string]>): string {
  let text = readFileSync(path.join(EXAMPLES, file), 'utf8');
  for (const [from, to] of replacements) {
    if (!text.includes(from)) throw new Error(`${file} no longer contains ${from}`);
    text = text.replaceAll(from, to);
  }
  return text;
}

export interface Balancer {
  output(): string;
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], dir: string): Balancer {
  let out = '';
  const proc: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return {
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Haproxy extends Balancer {
  /** Each server's status as HAProxy's checks see it ("UP", "DOWN", "UP 1/2", ...). */
  status(): Promise<Record<string, string>>;
  waitStatus(server: string, status: 'UP' | 'DOWN', timeoutMs: number): Promise<void>;
}

/**
 * HAProxy from the example in front of two hosts. h2c: as the README's HAProxy line for h2c has it, the hosts are
 * reached over cleartext HTTP/2 (`proto h2`) without the PROXY protocol; health checks stay HTTP/1.1, which the
 * hosts serve on the same socket.
 */
export async function startHaproxy(frontPort: number, hostPorts: [number, number], { h2c = false } = {}): Promise<Haproxy> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-haproxy-'));
  const admin = path.join(dir, 'admin.sock');
  const proto = h2c ? ' proto h2' : '';
  const config = example('haproxy.cfg', [
    ['global\n', `global\n    stats socket ${admin} mode 600 level admin\n`],
    ['bind :80', `bind 127.0.0.1:${frontPort}`],
    [HOSTS[0]!, `127.0.0.1:${hostPorts[0]}${proto}`],
    [HOSTS[1]!, `127.0.0.1:${hostPorts[1]}${proto}`],
    // HAProxy 2.6's checks fail with a socket error over proto h2, and over HTTP/1 with option httpchk's HTTP/1.0 request.
    // A stream a draining host's GOAWAY leaves unprocessed is safe to send again (RFC 9113 §8.7); HAProxy 2.6 only
    // knows it as a response the server never began (empty-response), and retries only what is idempotent.
    ...(h2c
      ? ([
          ['default-server send-proxy-v2 check check-send-proxy ', 'default-server check check-proto h1 '],
          [
            'option httpchk GET /health',
            'option httpchk\n    http-check send meth GET uri /health ver HTTP/1.1 hdr Host tsgunicorn\n' +
              '    retry-on conn-failure empty-response\n    http-request disable-l7-retry unless METH_GET',
          ],
          // Each request's line on stdout (output()), which says how many times it was retried.
          ['global\n', 'global\n    log stdout format raw local0 info\n'],
          ['mode http\n', 'mode http\n    log global\n    option httplog\n'],
        ] as Array<[string, string]>)
      : []),
  ]);
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const check = await runHost('haproxy', ['-c', '-f', file], 10_000);
  if (check.code !== 0) throw new Error(`haproxy -c rejects the example:\n${check.stdout}${check.stderr}`);
  const balancer = run('haproxy', ['-db', '-f', file], dir);
  const status = async (): Promise<Record<string, string>> => {
    const csv = await new Promise<string>((resolve, reject) => {
      let text = '';
      const socket = net.connect(admin, () => socket.end('show stat\n'));
      socket
        .on('data', (d) => (text += String(d)))
        .on('end', () => resolve(text))
        .on('error', reject);
    });
    const [header, ...rows] = csv.split('\n').filter((l) => l !== '');
    const columns = header!.replace(/^# /, '').split(',');
    const [name, state] = [columns.indexOf('svname'), columns.indexOf('status')];
    return Object.fromEntries(
      rows
        .map((r) => r.split(','))
        .filter((r) => r[0] === 'tsgunicorn')
        .map((r) => [r[name]!, r[state]!]),
    );
  };
  await waitFor(
    () => status().catch(() => undefined),
    10_000,
    () => `haproxy did not start:\n${tail(balancer.output(), 20)}`,
  );
  return {
    ...balancer,
    status,
    async waitStatus(server, want, timeoutMs) {
      let last: Record<string, string> = {};
      await waitFor(
        async () => ((last = await status())[server] === want ? true : undefined),
        timeoutMs,
        () => `haproxy did not see ${server} ${want} in ${timeoutMs} ms: ${JSON.stringify(last)}\n${tail(balancer.output(), 20)}`,
        100,
      );
    },
  };
}

/** nginx from the example, checked with nginx -t, in front of one host. */
export async function startNginx(frontPort: number, hostPort: number): Promise<Balancer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-nginx-'));
  const config = example('nginx.conf', [
    ['listen 80 proxy_protocol', `listen 127.0.0.1:${frontPort} proxy_protocol`],
    [`server ${HOSTS[0]};`, `server 127.0.0.1:${hostPort};`],
    [`        server ${HOSTS[1]};\n`, ''],
    ['set_real_ip_from 10.0.0.0/24;', 'set_real_ip_from 127.0.0.1;'],
  ]);
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, config);
  // Its own prefix, pid file and error log: nothing of the machine's nginx is used.
  const args = ['-p', dir, '-c', file, '-e', 'stderr', '-g', `daemon off; pid ${dir}/nginx.pid;`];
  const check = await runHost('nginx', ['-t', ...args], 10_000);
  if (check.code !== 0) throw new Error(`nginx -t rejects the example:\n${check.stdout}${check.stderr}`);
  return run('nginx', args, dir);
}
