// What an app module exports, and how tsgunicorn calls it: a node:http
// listener, a fetch handler, or a framework object that starts its own server.
import type { RequestListener } from 'node:http';
import { AppLoadError } from './spec.js';

export type Interface = 'node' | 'fetch';

/**
 * - node: a (req, res) function (Express, Connect), or a Koa app (its callback());
 * - fetch: an object with fetch(request) (Hono, itty-router) or a one-argument function;
 * - listen: a framework object that serves by starting its own server (Fastify,
 *   NestJS's INestApplication, polka): its listen() is called and the server it
 *   starts is served like a server script's.
 */
export type ExportShape = Interface | 'listen';

/** How `app` is served, or null when it is nothing tsgunicorn can serve. */
export function shapeOf(app: unknown, forced: 'auto' | Interface, file: string, name: string): ExportShape | null {
  if (forced !== 'auto') return forced;
  if (typeof app === 'function') {
    // (req, res), Express's (req, res, next), or a fetch handler (request) => Response.
    if (app.length >= 2) return 'node';
    if (app.length === 1) return 'fetch';
    // (...args) => real(...args) declares no parameter: guessing would answer every request with a 500.
    throw new AppLoadError(
      `${file}: ${name} is a function that declares no parameters, so tsgunicorn cannot tell a (req, res) listener ` +
        'from a fetch (request) handler: set interface = node or interface = fetch (--interface)',
    );
  }
  if (app !== null && typeof app === 'object') {
    const methods = app as { fetch?: unknown; callback?: unknown; listen?: unknown };
    if (typeof methods.fetch === 'function') return 'fetch';
    if (typeof methods.callback === 'function') return 'node';
    if (typeof methods.listen === 'function') return 'listen';
  }
  return null;
}

/** The operator's two ways out when an export cannot be served. */
export function unservableExport(file: string, name: string, value: unknown): AppLoadError {
  return new AppLoadError(
    `${file}: ${name} is ${describeValue(value)}, which tsgunicorn cannot serve. Either export the app (a (req, res) ` +
      'function, an object with fetch(request), a Koa app, or a framework object with listen(), such as a Fastify instance), ' +
      'or let the file start its own server with listen(), which tsgunicorn then serves on its sockets',
  );
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return `a function of ${value.length} parameter(s)`;
  if (typeof value !== 'object') return `a ${typeof value} (${JSON.stringify(value)})`;
  const keys = Object.keys(value);
  const name = value.constructor?.name;
  const what = name && name !== 'Object' ? `an instance of ${name}` : 'an object';
  return keys.length === 0 ? `${what} with no properties` : `${what} with ${keys.slice(0, 6).join(', ')}${keys.length > 6 ? ', …' : ''}`;
}

type FetchHandler = (request: Request) => Response | Promise<Response>;

export async function toListener(
  app: unknown,
  kind: Interface,
  file: string,
  name: string,
  onFetchError: (err: unknown) => void,
): Promise<RequestListener> {
  if (kind === 'node') {
    if (typeof app === 'function') return app as RequestListener;
    const koa = app as { callback?: () => RequestListener };
    if (app && typeof koa.callback === 'function') return koa.callback();
    throw new AppLoadError(`${file}: ${name} is not a (req, res) listener (interface = node)`);
  }
  const fetchApp = app as { fetch?: FetchHandler };
  const handler: FetchHandler | undefined =
    typeof app === 'function' ? (app as FetchHandler) : typeof fetchApp?.fetch === 'function' ? fetchApp.fetch.bind(app) : undefined;
  if (!handler) throw new AppLoadError(`${file}: ${name} has no fetch(request) method (interface = fetch)`);
  // Loaded only for fetch apps: it is a good part of a worker's boot time.
  const { getRequestListener } = await import('@hono/node-server');
  // node:http ignores what a listener returns; the adapter's promise settles on its own (errorHandler).
  // eslint-disable-next-line @typescript-eslint/no-misused-promises
  return getRequestListener(handler, {
    // Without it the adapter answers 500 and logs nothing; node listeners' errors are logged by the request handler.
    errorHandler: (err: unknown) => {
      onFetchError(err);
      return new Response('Internal Server Error\n', { status: 500, headers: { 'content-type': 'text/plain; charset=utf-8' } });
    },
  });
}
