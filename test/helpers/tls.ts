// A throwaway self-signed certificate for TLS listeners in tests.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export function selfSigned(): { certfile: string; keyfile: string; cert: Buffer; key: Buffer } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-tls-'));
  const certfile = path.join(dir, 'cert.pem');
  const keyfile = path.join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', keyfile, '-out', certfile],
    {
      stdio: 'ignore',
    },
  );
  return { certfile, keyfile, cert: readFileSync(certfile), key: readFileSync(keyfile) };
}
