// HTTP/2 through the installed package, under the unit's sandbox as the service user: h2 over TLS with a private
// key only the tsgunicorn group may read (as the README says to keep it), h2c by prior knowledge and by upgrade
// (nghttp2's own client, `nghttp -u`), and HTTP/1.1 on the same sockets.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { diagnose, start, useMachine } from './fixture.js';
import { SUITES } from './harness.js';
import { request } from '../helpers/http.js';
import { h2request } from '../helpers/http2.js';
import { selfSigned } from '../helpers/tls.js';

const H2C_PORT = 18291;
const TLS_PORT = 18292;
const APP = 'export const app = (req, res) => res.end(`${req.httpVersion} ${req.headers[":scheme"] ?? "-"}`);\n';

describe.each(SUITES)('%s: HTTP/2 through the package', (suite) => {
  const machine = useMachine(suite);

  it('serves h2 over TLS with a key readable by the tsgunicorn group only, h2c by prior knowledge and by upgrade, and HTTP/1.1 beside each', async () => {
    const m = machine();
    const { cert, key } = selfSigned();
    await m.writeFile('/srv/h2/app.mjs', APP);
    await m.writeFile('/etc/tsgunicorn/tls/h2.crt', cert.toString());
    await m.writeFile('/etc/tsgunicorn/tls/h2.key', key.toString());
    await m.run(['chown', 'root:tsgunicorn', '/etc/tsgunicorn/tls/h2.key']);
    await m.run(['chmod', '0640', '/etc/tsgunicorn/tls/h2.key']);
    await m.writeFile(
      '/etc/tsgunicorn/h2c.ini',
      `app = /srv/h2/app.mjs\nbind = 127.0.0.1:${H2C_PORT}\nworkers = 2\nhttp2_cleartext = both\nforwarded_allow_ips = 127.0.0.1\n`,
    );
    await m.writeFile(
      '/etc/tsgunicorn/h2tls.ini',
      `app = /srv/h2/app.mjs\nbind = 127.0.0.1:${TLS_PORT}\nworkers = 1\n` +
        'certfile = /etc/tsgunicorn/tls/h2.crt\nkeyfile = /etc/tsgunicorn/tls/h2.key\nhttp_protocols = h2,h1\n',
    );
    await m.run(['systemctl', 'daemon-reload']);
    for (const unit of ['tsgunicorn@h2c.service', 'tsgunicorn@h2tls.service']) await start(m, unit);

    try {
      // h2c: prior knowledge, upgrade, and HTTP/1.1, on one socket.
      const h2c = `http://127.0.0.1:${H2C_PORT}/`;
      expect((await h2request(h2c)).body).toBe('2.0 http');
      const { stdout: upgraded } = await promisify(execFile)('nghttp', ['-u', '-v', '-t', '20', h2c]);
      expect(upgraded).toMatch(/HTTP Upgrade success/);
      expect(upgraded).toContain('2.0 http');
      expect((await request(h2c)).body).toBe('1.1 -');

      // h2 by ALPN, HTTP/1.1 by ALPN, over TLS with the key the service user reads through its group.
      const h2 = `https://127.0.0.1:${TLS_PORT}/`;
      expect((await h2request(h2, { ca: cert })).body).toBe('2.0 https');
      expect((await request(h2, { ca: cert })).body).toBe('1.1 -');
    } catch (err) {
      throw new Error(
        `${(err as Error).message}\n${await diagnose(m, 'tsgunicorn@h2c.service')}\n${await diagnose(m, 'tsgunicorn@h2tls.service')}`,
      );
    }
  });
});
