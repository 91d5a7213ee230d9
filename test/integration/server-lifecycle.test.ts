// A server script's server behaves as under `node server.js` around the
// requests too: address() and `listening` at once, close() and listen() again,
// parked servers, which server is served, boot failures, and servers that are
// not HTTP.
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { freePort, isListening } from '../helpers/ports.js';
import { selfSigned } from '../helpers/tls.js';
import { FIXTURES, runCli, serversStoppedAfterEach } from '../helpers/tsgunicorn.js';
import { until } from '../helpers/wait.js';

const start = serversStoppedAfterEach();
const script = (name: string) => path.join(FIXTURES, 'server-scripts', name);
const json = async (url: string) => JSON.parse((await request(url)).body) as Record<string, unknown>;

/** What plain node's server.address() says for listen(port, host). */
async function nodeAddress(port: number, host: string): Promise<unknown> {
  const code = `const s=require('net').createServer().listen(${port},${JSON.stringify(host)},()=>{console.log(JSON.stringify(s.address()));s.close()})`;
  const { stdout } = await promisify(execFile)(process.execPath, ['-e', code]);
  return JSON.parse(stdout) as unknown;
}

describe('the served server, as plain node has it', () => {
  it('address() and listening right after listen(port): the address it is served on', async () => {
    const server = await start(['-w', '1', script('lifecycle.mjs')], { env: { SCRIPT_PORT: String(await freePort()) } });
    expect(await json(`${server.url}/address-at-listen`)).toEqual({
      atListen: { address: '127.0.0.1', family: 'IPv4', port: server.port },
      listeningAtListen: true,
      now: { address: '127.0.0.1', family: 'IPv4', port: server.port },
    });
  });

  it('under a unix bind, address() is the socket path, as node returns it after listen(path)', async () => {
    const sock = path.join(mkdtempSync(path.join(os.tmpdir(), 'tsg-life-')), 'app.sock');
    // The unix socket first: it is the one the app's server listens on; requests come in over TCP.
    const server = await start(['-w', '1', '-b', `unix:${sock}`, '-b', '127.0.0.1:0', script('lifecycle.mjs')]);
    const url = server.output().match(/Listening at: (http:\/\/127\.0\.0\.1:\d+)/)![1]!;
    expect(await json(`${url}/address-at-listen`)).toEqual({ atListen: sock, listeningAtListen: true, now: sock });
  });

  it('Fastify, which reads address() to log it, boots under a unix bind alone and serves there', async () => {
    const sock = path.join(mkdtempSync(path.join(os.tmpdir(), 'tsg-life-')), 'app.sock');
    const server = await start(['-w', '2', '-b', `unix:${sock}`, path.join(FIXTURES, 'frameworks', 'fastify', 'server.js')], {
      waitReady: false,
    });
    await server.waitFor(/Booted 2 workers/);
    const { body } = await request('http://localhost/pid', { socketPath: sock });
    expect(body).toMatch(/^\d+$/);
    expect(server.output()).toContain(`Server listening at ${sock}`);
  });

  it('an app that closes its server ends that worker, which is logged and replaced', async () => {
    const server = await start(['-w', '1', script('lifecycle.mjs')], { env: { SCRIPT_PORT: String(await freePort()) } });
    const pid = (await request(`${server.url}/close`)).body.replace('closing ', '');
    await server.waitFor(/The app closed its server \(server\.close\(\)\) and did not listen again; this worker stops and is replaced/);
    await server.waitFor(new RegExp(`Worker \\(pid:${pid}\\) exited`));
    await until('a new worker serves', async () => {
      const reply = await request(server.url).catch(() => null);
      return reply && reply.body !== pid ? true : undefined;
    });
  });

  it('close() then listen() again serves on, from the same worker', async () => {
    const server = await start(['-w', '1', script('lifecycle.mjs')], { env: { SCRIPT_PORT: String(await freePort()) } });
    const pid = (await request(`${server.url}/close-and-listen-again`)).body.replace('closing ', '');
    await server.waitFor(/listening again true/);
    expect((await request(server.url)).body).toBe(pid);
    expect((await request(server.url)).body).toBe(pid);
    expect(server.output()).not.toMatch(/The app closed its server|exited with code/);
  });

  it('an https server script is logged as https://', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-life-'));
    const { certfile, keyfile } = selfSigned(dir, 'own');
    const server = await start(['-w', '1', script('own-tls.mjs')], {
      env: { SCRIPT_PORT: String(await freePort()), TLS_CERT: certfile, TLS_KEY: keyfile },
    });
    expect(server.output()).toMatch(new RegExp(`Listening at: https://127\\.0\\.0\\.1:${server.port} `));
    await server.waitFor(new RegExp(`own-tls\\.mjs asked for :\\d+; serving on https://127\\.0\\.0\\.1:${server.port}`));
    expect(server.output()).not.toMatch(/http:\/\/127/);
  });
});

describe('parked servers', () => {
  it('are listening after their listening event, report the address they asked for, and close cleanly', async () => {
    const admin = await freePort();
    const server = await start(['-w', '1', script('parked.mjs')], {
      env: { SCRIPT_PORT: String(await freePort()), ADMIN_PORT: String(admin), ADMIN_HOST: 'localhost' },
    });
    expect(await isListening(admin)).toBe(false);
    expect(await isListening(admin, '::1')).toBe(false);
    expect(await json(`${server.url}/parked`)).toEqual({
      listening: true,
      address: await nodeAddress(admin, 'localhost'),
      listeningEvents: 1,
    });
    expect(await json(`${server.url}/close-parked`)).toEqual({ error: null, listening: false });
  });

  it('with no host, the address node binds: every address, IPv6', async () => {
    const admin = await freePort();
    const server = await start(['-w', '1', script('parked.mjs')], {
      env: { SCRIPT_PORT: String(await freePort()), ADMIN_PORT: String(admin) },
    });
    expect(await json(`${server.url}/parked`)).toMatchObject({ listening: true, address: await nodeAddress(admin, '::') });
  });
});

describe('which server is served', () => {
  it('the one asking for $PORT, even when an admin server listened before it', async () => {
    const admin = await freePort();
    const server = await start(['-w', '2', script('admin-first.mjs')], { env: { ADMIN_PORT: String(admin) } });
    expect((await request(server.url)).body).toBe('main');
    expect(await isListening(admin)).toBe(false);
    const warning = server
      .output()
      .split('\n')
      .find((l) => l.includes(`asking for :${admin}; it is not bound`));
    expect(warning).toContain(`(:${server.port}: the one asking for $PORT`);
    // --check-config names the same one.
    const checked = await runCli(['--check-config', script('admin-first.mjs')], {
      env: { ADMIN_PORT: String(admin), PORT: String(server.port) },
    });
    expect(checked.stdout).toContain(`loads as a server script (it asks for :${server.port},`);
  });

  it('one asking for $PORT after another was served: a loud warning naming both', async () => {
    const admin = await freePort();
    const server = await start(['-w', '1', script('admin-first.mjs')], { env: { ADMIN_PORT: String(admin), LATE_MAIN: '1' } });
    expect((await request(server.url)).body).toBe('admin');
    await server.waitFor(
      new RegExp(
        `\\[WARNING\\] The app's server asking for :${server.port} .* started after its server for :${admin}, .*:${server.port} is NOT served`,
      ),
    );
  });

  it('an explicit MODULE:NAME is served even when the module listens while imported', async () => {
    const asked = await freePort();
    const server = await start(['-w', '1', `${script('listens-and-exports.mjs')}:app`], { env: { SCRIPT_PORT: String(asked) } });
    expect((await request(server.url)).body).toBe('export');
    expect(await isListening(asked)).toBe(false);
  });
});

describe('a boot that fails ends at once, with the app’s own error', () => {
  it('an unhandled rejection during boot: exit 4, the error and where', async () => {
    const result = await runCli(['-b', '127.0.0.1:0', '-w', '1', script('boot-rejects.mjs')]);
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(/Failed to load the app:\nError: DATABASE_URL is not set\n\s+at main \(file:\/\/.*boot-rejects\.mjs:7:/);
    expect(result.stderr).not.toMatch(/neither exports an app/);
  });

  it('an error thrown in the listen() callback: exit 4, the error and where', async () => {
    const result = await runCli(['-b', '127.0.0.1:0', '-w', '1', script('listen-callback-throws.mjs')], {
      env: { SCRIPT_PORT: String(await freePort()) },
    });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(
      /TypeError: boom in the listen callback\n\s+at Server\.<anonymous> \(file:\/\/.*listen-callback-throws\.mjs:7:/,
    );
  });
});

describe('servers that are not HTTP', () => {
  it('a raw net.Server on a fixed port is refused at boot with what to do, not an EADDRINUSE in the second worker', async () => {
    const raw = await freePort();
    const result = await runCli(['-b', '127.0.0.1:0', '-w', '2', script('raw-net.mjs')], {
      env: { SCRIPT_PORT: String(await freePort()), RAW_PORT: String(raw) },
    });
    expect(result.code).toBe(4);
    expect(result.stderr).toMatch(
      new RegExp(
        `The app listens on :${raw} with a net\\.Server that is not HTTP, which tsgunicorn's workers cannot share: run that server as a service of its own.*\\n\\s+at .*raw-net\\.mjs:6:`,
      ),
    );
    expect(result.stderr).not.toMatch(/EADDRINUSE/);
  });

  it('one on port 0 (a port of each worker’s own) binds as asked', async () => {
    const server = await start(['-w', '2', script('raw-net.mjs')], { env: { SCRIPT_PORT: String(await freePort()), RAW_PORT: '0' } });
    expect((await request(server.url)).body).toBe('http');
  });
});
