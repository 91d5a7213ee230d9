// Server processes for the bench: each runs in its own process group so that
// stopping it (or the bench dying) takes its workers down too.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const liveGroups = new Set();
const OUTPUT_TAIL_BYTES = 16 * 1024;

/** Kills every process group still alive; safe to call from an 'exit' handler. */
export function killAll() {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  liveGroups.clear();
}

/** Records a group someone else spawned (the PM2 daemon) so killAll covers it. */
export function trackGroup(pgid) {
  liveGroups.add(pgid);
}

function signalGroup(pgid, signal) {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is gone
  }
}

function groupAlive(pgid) {
  return signalGroup(pgid, 0);
}

/**
 * Spawns a command as the leader of a new process group. Its stdout/stderr
 * are drained into a short tail (for error messages) so the server never blocks on a full pipe.
 */
export function spawnGroup(command, args, { env, cwd } = {}) {
  const child = spawn(command, args, { env, cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (chunk) => {
    tail = (tail + chunk.toString()).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.on('error', (err) => keep(`spawn error: ${err.message}\n`));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  liveGroups.add(child.pid);
  return { child, pid: child.pid, exited, output: () => tail };
}

/** Stops a group: SIGTERM, up to graceMs for everyone in it to leave, then SIGKILL. */
export async function stopGroup(pgid, graceMs = 5000) {
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (groupAlive(pgid) && Date.now() < deadline) await sleep(25);
  signalGroup(pgid, 'SIGKILL');
  liveGroups.delete(pgid);
}

// What proxy-v2.lua sends first on each connection: a PROXY protocol v2 header (PROXY, TCP over IPv4,
// 192.0.2.1:12345 to 127.0.0.1:80).
const PROXY_V2_HEADER = Buffer.from('0d0a0d0a000d0a515549540a2111000cc0000201' + '7f0000013039' + '0050', 'hex');

/** One GET after a PROXY v2 header; resolves to the status code, or undefined when the connection fails. */
function probeProxied(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    let head = '';
    const socket = net.connect({ host: hostname, port: Number(port) }, () => {
      socket.end(Buffer.concat([PROXY_V2_HEADER, Buffer.from(`GET / HTTP/1.1\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`)]));
    });
    socket.setTimeout(1000, () => socket.destroy());
    socket.on('data', (chunk) => (head += chunk.toString('latin1')));
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]) || undefined));
    socket.on('error', () => {});
  });
}

/** One GET over HTTP/2 (h2c with prior knowledge for http:, ALPN h2 for https:); the status, or undefined. */
function probeHttp2(url) {
  return new Promise((resolve) => {
    const session = http2.connect(url, { rejectUnauthorized: false });
    const done = (status) => {
      session.destroy();
      resolve(status);
    };
    session.setTimeout(1000, () => done(undefined));
    session.on('error', () => done(undefined));
    const req = session.request({ ':path': '/' });
    req.on('response', (headers) => {
      req.resume();
      req.on('end', () => done(headers[':status']));
    });
    req.on('error', () => done(undefined));
  });
}

/** One GET; resolves to the status code, or undefined when the connection fails. */
function probe(url, proxyV2, http2Only) {
  if (proxyV2) return probeProxied(url);
  if (http2Only) return probeHttp2(url);
  const client = url.startsWith('https:') ? https : http;
  return new Promise((resolve) => {
    const req = client.get(url, { agent: false, rejectUnauthorized: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/**
 * Polls url every 5 ms until it answers 200; returns the milliseconds since
 * startedAt (a performance.now() taken just before the spawn); with proxyV2 each probe starts with a PROXY v2
 * header, with http2 each probe is an HTTP/2 request. Throws if the
 * process exits first or timeoutMs passes.
 */
export async function waitForHttp200(url, { startedAt, exited, timeoutMs = 15000, proxyV2 = false, http2: http2Only = false }) {
  let gone = false;
  exited?.then(() => {
    gone = true;
  });
  while (performance.now() - startedAt < timeoutMs) {
    if ((await probe(url, proxyV2, http2Only)) === 200) return performance.now() - startedAt;
    if (gone) throw new Error('server exited before answering 200');
    await sleep(5);
  }
  throw new Error(`no 200 from ${url} within ${timeoutMs} ms`);
}

/** Resident set size of a process in kB (VmRSS in /proc/PID/status), or undefined. */
export function readRssKb(pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The processes whose parent is pid (the ppid field of /proc/PID/stat). */
export function childrenOf(pid) {
  const found = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) found.push(Number(entry));
    } catch {
      // gone while listing
    }
  }
  return found;
}

/** Mean RSS in kB of a server's workers (its master's live children), or undefined when it has none. */
export function meanWorkerRssKb(masterPid) {
  const rss = childrenOf(masterPid)
    .map(readRssKb)
    .filter((kb) => kb !== undefined);
  return rss.length === 0 ? undefined : rss.reduce((a, b) => a + b, 0) / rss.length;
}

/** Every process below pid: its workers, and theirs. */
export function descendants(pid) {
  const found = [];
  for (let level = childrenOf(pid); level.length > 0; level = level.flatMap(childrenOf)) found.push(...level);
  return found;
}
