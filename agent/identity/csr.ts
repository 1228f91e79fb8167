// PKCS#10 certificate requests (RFC 2986) for the agent without an ASN.1 library: a DER encoder for one shape only — ECDSA P-256 key, subject O=<trust domain>, one URI SAN, ecdsa-with-SHA256.
import { createPublicKey, generateKeyPair as generateKeyPairCb, sign as signCb, type KeyObject } from 'node:crypto';
import { SmeshError } from '../../core/errors';

/** SPIFFE caps an id at 2048 bytes; anything longer is refused before it reaches the CA. */
export const MAX_CSR_URI_LENGTH = 2048;
/** X.520 ub-organization-name is 64; kept loose (trust domains may be longer) but bounded. */
const MAX_ORGANIZATION_LENGTH = 255;

// ── DER primitives ────────────────────────────────────────────────────────────

const TAG_INTEGER = 0x02;
const TAG_BIT_STRING = 0x03;
const TAG_OCTET_STRING = 0x04;
const TAG_OID = 0x06;
const TAG_UTF8_STRING = 0x0c;
const TAG_PRINTABLE_STRING = 0x13;
const TAG_BOOLEAN = 0x01;
const TAG_SEQUENCE = 0x30;
const TAG_SET = 0x31;
/** [0] IMPLICIT, constructed: CertificationRequestInfo.attributes. */
const TAG_CTX0_CONSTRUCTED = 0xa0;
/** [6] IMPLICIT IA5String: GeneralName.uniformResourceIdentifier. */
const TAG_CTX6_PRIMITIVE = 0x86;

/** Definite-length octets: short form below 128, else 0x80|n followed by n big-endian bytes. */
export function derLength(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`DER length ${n} is not a non-negative integer`);
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function derTlv(tag: number, ...content: Buffer[]): Buffer {
  const body = content.length === 1 ? content[0]! : Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body]);
}

/** OBJECT IDENTIFIER content: first two arcs folded into one, every arc base-128 with continuation bits. */
export function derOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new RangeError(`invalid OID ${dotted}`);
  const out: number[] = [];
  const push = (arc: number): void => {
    const groups: number[] = [arc % 128];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v % 128) | 0x80);
    out.push(...groups);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return derTlv(TAG_OID, Buffer.from(out));
}

const OID_ORGANIZATION = derOid('2.5.4.10');
const OID_EXTENSION_REQUEST = derOid('1.2.840.113549.1.9.14');
const OID_SUBJECT_ALT_NAME = derOid('2.5.29.17');
const OID_ECDSA_WITH_SHA256 = derOid('1.2.840.10045.4.3.2');
const DER_TRUE = derTlv(TAG_BOOLEAN, Buffer.from([0xff]));
const DER_VERSION_1 = derTlv(TAG_INTEGER, Buffer.from([0x00]));

// PrintableString alphabet (X.680 §41.4); anything else in the subject goes as UTF8String.
const PRINTABLE_RE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

// ── validation ────────────────────────────────────────────────────────────────

function csrError(message: string, cause?: unknown): SmeshError {
  return new SmeshError('SMESH_ERR_IDENTITY', `cannot build the certificate request: ${message}`, cause === undefined ? undefined : { cause });
}

function checkUri(uri: unknown): string {
  if (typeof uri !== 'string' || uri.length === 0) throw csrError(`URI SAN must be a non-empty string, got ${JSON.stringify(uri)}`);
  if (uri.length > MAX_CSR_URI_LENGTH) throw csrError(`URI SAN is ${uri.length} characters, at most ${MAX_CSR_URI_LENGTH} are allowed`);
  // IA5String is 7-bit; a URI also never holds spaces or control characters.
  const bad = /[^\x21-\x7e]/.exec(uri);
  if (bad) {
    const cp = bad[0].codePointAt(0)!;
    throw csrError(
      `URI SAN ${JSON.stringify(uri)} holds ${JSON.stringify(bad[0])} (U+${cp.toString(16).toUpperCase().padStart(4, '0')}) at index ${bad.index}; ` +
        'a URI SAN is an IA5String: printable ASCII only (percent-encode anything else)',
    );
  }
  return uri;
}

function checkOrganization(o: unknown): string {
  if (typeof o !== 'string' || o.length === 0) throw csrError(`subject organization must be a non-empty string, got ${JSON.stringify(o)}`);
  if (o.length > MAX_ORGANIZATION_LENGTH) throw csrError(`subject organization is ${o.length} characters, at most ${MAX_ORGANIZATION_LENGTH} are allowed`);
  if (/[\x00-\x1f\x7f]/.test(o)) throw csrError(`subject organization ${JSON.stringify(o)} holds a control character`);
  return o;
}

function checkP256PrivateKey(key: unknown): KeyObject {
  const k = key as Partial<KeyObject> | null | undefined;
  if (!k || typeof k !== 'object' || typeof k.export !== 'function' || k.type === undefined) {
    throw csrError('the private key must be a node:crypto KeyObject');
  }
  if (k.type !== 'private') throw csrError(`the key is a ${k.type} key; a private key is needed to sign the request`);
  if (k.asymmetricKeyType !== 'ec') throw csrError(`the key is ${k.asymmetricKeyType ?? 'of unknown type'}; an ECDSA P-256 key is required`);
  const curve = k.asymmetricKeyDetails?.namedCurve;
  if (curve !== 'prime256v1') throw csrError(`the key is on curve ${curve ?? 'unknown'}; an ECDSA P-256 (prime256v1) key is required`);
  return k as KeyObject;
}

// ── request ───────────────────────────────────────────────────────────────────

export interface CsrFields {
  /** The one URI SAN (the SPIFFE id). */
  readonly uri: string;
  /** Subject O= (the trust domain, as the CA-side tooling expects); omitted → empty subject. */
  readonly organization?: string;
  /** ECDSA P-256 private key that signs the request; its public half goes into the request. */
  readonly privateKey: KeyObject;
  /** SAN extension marked critical (default true, as RemoteCa always sent). */
  readonly critical?: boolean;
}

function subjectName(organization: string | undefined): Buffer {
  if (organization === undefined) return derTlv(TAG_SEQUENCE, Buffer.alloc(0));
  const value = Buffer.from(organization, 'utf8');
  const str = derTlv(PRINTABLE_RE.test(organization) ? TAG_PRINTABLE_STRING : TAG_UTF8_STRING, value);
  return derTlv(TAG_SEQUENCE, derTlv(TAG_SET, derTlv(TAG_SEQUENCE, OID_ORGANIZATION, str)));
}

function extensionRequest(uri: string, critical: boolean): Buffer {
  const generalNames = derTlv(TAG_SEQUENCE, derTlv(TAG_CTX6_PRIMITIVE, Buffer.from(uri, 'ascii')));
  const ext = critical
    ? derTlv(TAG_SEQUENCE, OID_SUBJECT_ALT_NAME, DER_TRUE, derTlv(TAG_OCTET_STRING, generalNames))
    : derTlv(TAG_SEQUENCE, OID_SUBJECT_ALT_NAME, derTlv(TAG_OCTET_STRING, generalNames));
  const extensions = derTlv(TAG_SEQUENCE, ext);
  return derTlv(TAG_SEQUENCE, OID_EXTENSION_REQUEST, derTlv(TAG_SET, extensions));
}

function signAsync(data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Default dsaEncoding is 'der': the Ecdsa-Sig-Value SEQUENCE that X.509 signatures carry.
    signCb('sha256', data, key, (err, sig) => (err ? reject(err) : resolve(sig)));
  });
}

/** The DER CertificationRequest for `fields`, signed with its key. */
export async function buildCsrDer(fields: CsrFields): Promise<Buffer> {
  const uri = checkUri(fields.uri);
  const organization = fields.organization === undefined ? undefined : checkOrganization(fields.organization);
  const key = checkP256PrivateKey(fields.privateKey);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const info = derTlv(TAG_SEQUENCE, DER_VERSION_1, subjectName(organization), spki, derTlv(TAG_CTX0_CONSTRUCTED, extensionRequest(uri, fields.critical ?? true)));
  let signature: Buffer;
  try {
    signature = await signAsync(info, key);
  } catch (err) {
    throw csrError(`signing failed: ${(err as Error).message}`, err);
  }
  const algorithm = derTlv(TAG_SEQUENCE, OID_ECDSA_WITH_SHA256);
  // BIT STRING: leading 0 = no unused bits in the last octet.
  return derTlv(TAG_SEQUENCE, info, algorithm, derTlv(TAG_BIT_STRING, Buffer.from([0]), signature));
}

export function toPem(der: Buffer, label: string): string {
  const b64 = der.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export async function buildCsrPem(fields: CsrFields): Promise<string> {
  return toPem(await buildCsrDer(fields), 'CERTIFICATE REQUEST');
}

export function generateP256KeyPair(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    generateKeyPairCb('ec', { namedCurve: 'prime256v1' }, (err, publicKey, privateKey) =>
      err ? reject(new SmeshError('SMESH_ERR_IDENTITY', `cannot generate a P-256 key: ${err.message}`, { cause: err })) : resolve({ privateKey, publicKey }),
    );
  });
}

export interface NewCsr {
  readonly csrPem: string;
  /** PKCS#8 PEM of the fresh private key. */
  readonly keyPem: string;
  /** SubjectPublicKeyInfo DER of the key in the request (compare with the issued leaf). */
  readonly spkiDer: Buffer;
}

/** A fresh P-256 key and a request for `uri` signed with it. */
export async function createCsr(uri: string, organization?: string): Promise<NewCsr> {
  checkUri(uri);
  if (organization !== undefined) checkOrganization(organization);
  const { privateKey, publicKey } = await generateP256KeyPair();
  const csrPem = await buildCsrPem({ uri, organization, privateKey });
  return {
    csrPem,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
  };
}
