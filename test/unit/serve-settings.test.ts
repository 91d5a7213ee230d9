// The settings a worker gives the HTTP server it serves on. An app's own server
// (a server script's) has them pinned against the app; tsgunicorn's own server
// keeps V8's fast property layout, which Node reads on every connection.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { builtModule } from '../helpers/loaded-modules.js';

const run = promisify(execFile);

it("keeps tsgunicorn's own server fast and pins the settings of an app's server", async () => {
  const script = `
    import http from 'node:http';
    const { applyServerSettings } = await import(${JSON.stringify(builtModule('worker/serve.js'))});
    const settings = { keepalive: 2, header_timeout: 20, request_timeout: 60, limit_request_line: 4094, limit_request_field_size: 8190, limit_request_fields: 100 };
    const own = http.createServer(() => {});
    const apps = http.createServer(() => {});
    applyServerSettings(own, settings, false);
    applyServerSettings(apps, settings, true);
    apps.keepAliveTimeout = 65000;
    console.log(JSON.stringify({
      own: { fast: %HasFastProperties(own), keepAliveTimeout: own.keepAliveTimeout, maxHeadersCount: own.maxHeadersCount },
      apps: { keepAliveTimeout: apps.keepAliveTimeout, maxHeadersCount: apps.maxHeadersCount },
    }));`;
  const { stdout } = await run(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script]);
  expect(JSON.parse(stdout)).toEqual({
    own: { fast: true, keepAliveTimeout: 2000, maxHeadersCount: 101 },
    apps: { keepAliveTimeout: 2000, maxHeadersCount: 101 },
  });
});
