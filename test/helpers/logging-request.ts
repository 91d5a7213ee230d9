// Test helper for the logging tests: serves one real request on 127.0.0.1 and
// hands back the AccessEntry built when the response finished.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { AccessEntry } from '../../src/logging/access-format.js';

export interface Served {
  entry: AccessEntry;
  /** The raw bytes of the response, as the client read them. */
  response: string;
}

export interface ServeOptions {
  /** Response status, headers and body. */
  status?: number;
  headers?: Record<string, string | string[]>;
  body?: string;
  insecureHTTPParser?: boolean;
  /** Overrides for fields the test wants fixed (startedAt, durationUs, pid). */
  entry?: Partial<Pick<AccessEntry, 'startedAt' | 'durationUs' | 'pid'>>;
}

/** Sends `raw` (a whole HTTP/1.1 request, bytes as latin1) over a plain socket. */
export async function serve(raw: string | Buffer, options: ServeOptions = {}): Promise<Served> {
  const body = options.body ?? '';
  let resolveEntry!: (e: AccessEntry) => void;
  const entry = new Promise<AccessEntry>((resolve) => (resolveEntry = resolve));
  const server = http.createServer({ insecureHTTPParser: options.insecureHTTPParser ?? false }, (req, res) => {
    const startedAt = Date.now();
    res.on('finish', () =>
      resolveEntry({
        req,
        res,
        remoteAddr: req.socket.remoteAddress ?? '-',
        startedAt,
        durationUs: 1,
        bytes: Buffer.byteLength(body),
        pid: process.pid,
        ...options.entry,
      }),
    );
    res.writeHead(options.status ?? 200, options.headers ?? {});
    res.end(body);
  });
  server.on('clientError', (err, socket) => socket.destroy(err));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const response = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = net.connect(port, '127.0.0.1', () => socket.end(typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw));
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
    let timer: NodeJS.Timeout | undefined;
    const refused = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`request not served: ${response}`)), 2000);
    });
    try {
      return { entry: await Promise.race([entry, refused]), response };
    } finally {
      clearTimeout(timer);
    }
  } finally {
    server.close();
  }
}

/** A request with the given target and extra header lines ("Name: value"). */
export function request(target: string, ...headers: string[]): string {
  return [`GET ${target} HTTP/1.1`, 'Host: test', 'Connection: close', ...headers, '', ''].join('\r\n');
}
