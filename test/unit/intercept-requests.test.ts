// interceptRequests: tsgunicorn's per-request services run once per request on
// an app's server, and the request then reaches the app the way node's server
// sends it, through the server's emit as it is at that moment, where APM agents hook in.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { interceptRequests } from '../../src/worker/serve.js';
import { request } from '../helpers/http.js';

type Emit = (this: http.Server, event: string | symbol, ...args: unknown[]) => boolean;
// eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was
const protoEmit = http.Server.prototype.emit as Emit;
afterEach(() => {
  http.Server.prototype.emit = protoEmit;
});
/** A wrapper of emit as agents write them, counting the 'request' events it passes on. */
function counting(emit: Emit): { emit: Emit; seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    emit: function (this: http.Server, event: string | symbol, ...args: unknown[]) {
      if (event === 'request') seen.push((args[0] as http.IncomingMessage).url!);
      return emit.apply(this, [event, ...args]);
    },
  };
}

async function serving(server: http.Server, services: string[]): Promise<string> {
  interceptRequests(server, (app) => ({
    listener: (req: http.IncomingMessage, res: http.ServerResponse) => {
      services.push(req.url!);
      app(req, res);
    },
  }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

it("runs the services once, then the prototype's emit as it is at request time, wrapped before or after", async () => {
  const before = counting(protoEmit);
  http.Server.prototype.emit = before.emit;
  const handled: string[] = [];
  const services: string[] = [];
  const server = http.createServer((req, res) => {
    handled.push(req.url!);
    res.end('ok');
  });
  const url = await serving(server, services);
  try {
    expect((await request(`${url}/one`)).body).toBe('ok');
    // eslint-disable-next-line @typescript-eslint/unbound-method -- wrapped as an agent does
    const after = counting(http.Server.prototype.emit as Emit);
    http.Server.prototype.emit = after.emit;
    expect((await request(`${url}/two`)).body).toBe('ok');

    expect(services).toEqual(['/one', '/two']);
    expect(handled).toEqual(['/one', '/two']);
    expect(before.seen).toEqual(['/one', '/two']);
    expect(after.seen).toEqual(['/two']);
  } finally {
    server.close();
  }
});

it('keeps an emit the app set on its server before it was served, and calls it once per request', async () => {
  const handled: string[] = [];
  const services: string[] = [];
  const server = http.createServer((req, res) => {
    handled.push(req.url!);
    res.end('ok');
  });
  const own = counting(server.emit.bind(server) as Emit);
  server.emit = own.emit;
  const url = await serving(server, services);
  try {
    expect((await request(`${url}/a`)).body).toBe('ok');
    expect(services).toEqual(['/a']);
    expect(own.seen).toEqual(['/a']);
    expect(handled).toEqual(['/a']);
  } finally {
    server.close();
  }
});
