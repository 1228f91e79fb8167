// Test certificates made with the openssl CLI: a rogue CA with a SPIFFE client leaf, or a leaf signed by a given CA.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface LeafFiles {
  cert: string;
  key: string;
  ca: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: 20_000 });
}

/** Creates a self-signed P-256 CA in `dir` (ca.pem / ca.key). */
export function makeCa(dir: string, cn = 'smesh-test rogue CA'): { cert: string; key: string } {
  fs.mkdirSync(dir, { recursive: true });
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  return { cert: path.join(dir, 'ca.pem'), key: path.join(dir, 'ca.key') };
}

/** Issues a P-256 leaf with a URI SAN (e.g. a SPIFFE id) signed by `ca`, into `dir/<name>.pem|.key`. */
export function issueLeaf(dir: string, ca: { cert: string; key: string }, uriSan: string, name = 'leaf'): LeafFiles {
  fs.mkdirSync(dir, { recursive: true });
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(
    ext,
    [`subjectAltName=URI:${uriSan}`, 'basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=clientAuth,serverAuth'].join('\n') + '\n',
  );
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/O=smesh-test', '-keyout', `${name}.key`, '-out', `${name}.csr`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', `${name}.pem`], dir);
  return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`), ca: ca.cert };
}
