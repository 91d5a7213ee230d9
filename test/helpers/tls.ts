// Throwaway self-signed certificates for TLS listeners in tests (openssl).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CertificatePair {
  certfile: string;
  keyfile: string;
  cert: Buffer;
  key: Buffer;
}

/** A self-signed certificate for 127.0.0.1 and its key, NAME.crt and NAME.key in `dir` (a new directory unless given). */
export function selfSigned(dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-tls-')), name = 'server'): CertificatePair {
  const certfile = path.join(dir, `${name}.crt`);
  const keyfile = path.join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyfile,
      '-out',
      certfile,
    ],
    { stdio: 'ignore' },
  );
  return { certfile, keyfile, cert: readFileSync(certfile), key: readFileSync(keyfile) };
}
