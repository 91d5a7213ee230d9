// Small HTTP clients for tests: one request on a fresh connection, raw bytes, loads.
import http from 'node:http';
import net from 'node:net';

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One request, on a new connection unless an agent is given. */
export function request(url: string, options: http.RequestOptions & { body?: string | Buffer } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options, headers: { connection: 'close', ...options.headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.end(options.body);
  });
}

/** Sends raw bytes and resolves with everything the server sent until it closed or went quiet. */
export function rawExchange(port: number, payload: string | Buffer, quietMs = 1500): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let timer: NodeJS.Timeout;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(received);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(finish, quietMs);
    };
    socket.on('connect', () => {
      socket.write(payload);
      arm();
    });
    socket.on('data', (d) => {
      received += d.toString('latin1');
      arm();
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', (err) => (received ? finish() : reject(err)));
  });
}

export interface LoadResult {
  ok: number;
  failed: number;
  errors: string[];
  /** When each failed request was sent (epoch ms). */
  failedAt: number[];
  bodies: Map<string, number>;
}

/**
 * `clients` concurrent loops of GET `path` until `durationMs` passes or `total`
 * requests were made. keepAlive reuses one connection per client.
 */
export async function load(
  baseUrl: string,
  opts: { path?: string; clients: number; durationMs?: number; total?: number; keepAlive: boolean },
): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failed: 0, errors: [], failedAt: [], bodies: new Map() };
  const deadline = Date.now() + (opts.durationMs ?? 60_000);
  let started = 0;
  const limit = opts.total ?? Infinity;
  const url = baseUrl + (opts.path ?? '/pid');
  const client = async () => {
    const agent = opts.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
    while (Date.now() < deadline && started < limit) {
      started++;
      const sentAt = Date.now();
      try {
        const reply = await request(url, { agent: agent ?? false, headers: { connection: opts.keepAlive ? 'keep-alive' : 'close' } });
        if (reply.status === 200) {
          result.ok++;
          result.bodies.set(reply.body, (result.bodies.get(reply.body) ?? 0) + 1);
        } else {
          result.failed++;
          result.failedAt.push(sentAt);
          result.errors.push(`status ${reply.status}`);
        }
      } catch (err) {
        result.failed++;
        result.failedAt.push(sentAt);
        result.errors.push((err as Error).message);
      }
    }
    agent?.destroy();
  };
  await Promise.all(Array.from({ length: opts.clients }, client));
  return result;
}

export interface Streamed extends Reply {
  /** When each piece of the body arrived (ms after the response head). */
  arrivals: number[];
}

/**
 * GET `url` and note when each piece of the body arrives, to tell a streamed
 * response from a buffered one. `onHead` is called when the response head is in.
 */
export function streamed(url: string, onHead?: () => void): Promise<Streamed> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      onHead?.();
      const head = Date.now();
      const arrivals: number[] = [];
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        arrivals.push(Date.now() - head);
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, arrivals }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20000, () => req.destroy(new Error(`timeout: ${url}`)));
  });
}
