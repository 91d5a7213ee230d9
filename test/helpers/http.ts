// HTTP clients for tests: one request on a fresh connection, raw bytes, a load
// generator. The e2e tests use them from the host to a container's server (they
// share the network). A load's request opens its own connection unless told to
// keep it alive, so a failure means the server refused, reset or failed it:
// never a client's stale keep-alive connection.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** https.RequestOptions, so an https: URL can take rejectUnauthorized: false for a test's self-signed certificate. */
export type RequestOptions = https.RequestOptions & { body?: string | Buffer; timeoutMs?: number };

/**
 * One request (http: or https:), on a new connection unless an agent is given.
 * No answer within `timeoutMs` (20 s) fails it with code ETIMEDOUT.
 */
export function request(url: string, options: RequestOptions = {}): Promise<Reply> {
  const { body, timeoutMs = 20_000, ...requestOptions } = options;
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(
      url,
      { agent: false, ...requestOptions, headers: { connection: 'close', ...options.headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(timeoutMs, () =>
      req.destroy(Object.assign(new Error(`no reply from ${url} in ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
    );
    req.end(body);
  });
}

/** A request as a load counts it: a 200, or why not (an errno code, else the error's message, or `HTTP <status>`). */
export async function attempt(
  url: string,
  options: RequestOptions = {},
): Promise<{ ok: true; reply: Reply } | { ok: false; reason: string }> {
  try {
    const reply = await request(url, options);
    return reply.status === 200 ? { ok: true, reply } : { ok: false, reason: `HTTP ${reply.status}` };
  } catch (err) {
    return { ok: false, reason: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
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

export interface LoadOptions {
  /** What each request GETs. */
  url: string;
  clients: number;
  /** How long the run may last; 60 s by default. */
  durationMs?: number;
  /** How many requests the clients make in all, at most. */
  total?: number;
  /** Each client reuses one keep-alive connection; by default every request has a connection of its own. */
  keepAlive?: boolean;
  /** Ends the run earlier, once it returns false. */
  while?: () => boolean;
  /** The clients' source address (any of 127.0.0.0/8 on loopback). */
  localAddress?: string;
  /** How long each client waits between its requests (paced, to stay far from exhausting loopback ports). */
  pauseMs?: number;
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** Why each failed request failed, in order: see attempt(). */
  errors: string[];
  /** The same, counted: { ECONNREFUSED: 3, 'HTTP 502': 1 }. */
  reasons: Record<string, number>;
  /** When each failed request was sent (epoch ms). */
  failedAt: number[];
  /** Distinct 200 bodies → count, to see which worker or code version served. */
  bodies: Map<string, number>;
  /** How long each 200 took, in ms, in order of arrival. */
  latenciesMs: number[];
}

/** `clients` concurrent loops, each sending one GET at a time, until the duration, the total or `while` ends the run. */
export async function load(opts: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failed: 0, errors: [], reasons: {}, failedAt: [], bodies: new Map(), latenciesMs: [] };
  const deadline = Date.now() + (opts.durationMs ?? 60_000);
  const limit = opts.total ?? Infinity;
  let started = 0;
  const client = async () => {
    const agent = opts.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
    const options: RequestOptions = { agent, headers: { connection: opts.keepAlive ? 'keep-alive' : 'close' } };
    if (opts.localAddress !== undefined) options.localAddress = opts.localAddress;
    while (Date.now() < deadline && started < limit && (opts.while?.() ?? true)) {
      started++;
      const sentAt = Date.now();
      const at = performance.now();
      const r = await attempt(opts.url, options);
      if (r.ok) {
        result.ok++;
        result.latenciesMs.push(performance.now() - at);
        result.bodies.set(r.reply.body, (result.bodies.get(r.reply.body) ?? 0) + 1);
      } else {
        result.failed++;
        result.failedAt.push(sentAt);
        result.errors.push(r.reason);
        result.reasons[r.reason] = (result.reasons[r.reason] ?? 0) + 1;
      }
      if (opts.pauseMs) await new Promise((resolve) => setTimeout(resolve, opts.pauseMs));
    }
    if (agent) agent.destroy();
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
