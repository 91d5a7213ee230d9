// HTTP from the host to a container's server (they share the network), and a
// bounded loopback load generator. Each request opens its own connection, so a
// failure means the server refused, reset or failed it: never a client's stale
// keep-alive connection.
import http from 'node:http';

export interface Reply {
  status: number;
  body: string;
}

export function get(
  url: string,
  opts: { timeoutMs?: number; headers?: Record<string, string>; localAddress?: string | undefined } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      url,
      { agent: false, localAddress: opts.localAddress, headers: { connection: 'close', ...opts.headers } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeoutMs ?? 10_000, () =>
      req.destroy(Object.assign(new Error(`no reply from ${url} in time`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
  });
}

/** Why a request failed, as counted in a LoadResult: an errno code, or `HTTP <status>`. */
export async function attempt(
  url: string,
  timeoutMs = 10_000,
  localAddress?: string,
): Promise<{ ok: true; reply: Reply } | { ok: false; reason: string }> {
  try {
    const reply = await get(url, { timeoutMs, localAddress });
    return reply.status === 200 ? { ok: true, reply } : { ok: false, reason: `HTTP ${reply.status}` };
  } catch (err) {
    return { ok: false, reason: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
}

export interface LoadOptions {
  url: string;
  clients: number;
  durationMs: number;
  /** Bounds the run even on a very fast server. */
  maxRequestsPerClient: number;
  /** Ends the run earlier, once it returns false. */
  while?: () => boolean;
  /** The clients' source address (any of 127.0.0.0/8 on loopback). */
  localAddress?: string;
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** Failure reason → count, e.g. { ECONNREFUSED: 3, 'HTTP 502': 1 }. */
  reasons: Record<string, number>;
  /** Distinct 200 bodies → count, to see which code version served. */
  bodies: Record<string, number>;
}

/** `clients` loops, each sending one request at a time until the duration or its request budget is spent. */
export async function load(opts: LoadOptions): Promise<LoadResult> {
  const result: LoadResult = { ok: 0, failed: 0, reasons: {}, bodies: {} };
  const deadline = Date.now() + opts.durationMs;
  const client = async (): Promise<void> => {
    for (let i = 0; i < opts.maxRequestsPerClient && Date.now() < deadline && (opts.while?.() ?? true); i++) {
      const r = await attempt(opts.url, 10_000, opts.localAddress);
      if (r.ok) {
        result.ok++;
        result.bodies[r.reply.body] = (result.bodies[r.reply.body] ?? 0) + 1;
      } else {
        result.failed++;
        result.reasons[r.reason] = (result.reasons[r.reason] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: opts.clients }, client));
  return result;
}
