import { z } from 'zod';
import { importJWK, type CryptoKey, type JWK } from 'jose';

/**
 * Public JWKs as registered for clients and published for the server. Only RSA (for RS384) and EC P-384
 * (for ES384) keys, the two algorithms SMART backend services requires servers to support
 * (https://hl7.org/fhir/smart-app-launch/backend-services.html#authenticating-to-the-token-endpoint).
 */
export const SIGNING_ALGS = ['RS384', 'ES384'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export function isSigningAlg(alg: unknown): alg is SigningAlg {
  return typeof alg === 'string' && (SIGNING_ALGS as readonly string[]).includes(alg);
}

const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/);
const common = {
  kid: z.string().min(1).max(200),
  alg: z.enum(SIGNING_ALGS).optional(),
  use: z.literal('sig').optional(),
  key_ops: z.array(z.string()).optional(),
  ext: z.boolean().optional(),
};
const rsa = z.object({ kty: z.literal('RSA'), n: b64url, e: b64url, ...common });
const ec = z.object({ kty: z.literal('EC'), crv: z.literal('P-384'), x: b64url, y: b64url, ...common });
const jwk = z.discriminatedUnion('kty', [rsa, ec]);

export type PublicJwk = z.infer<typeof jwk>;
export interface PublicJwks {
  keys: PublicJwk[];
}

/** Members that only a private (or symmetric) key has: a registered JWKS must carry none of them. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export class JwksError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JwksError';
  }
}

/** Validates a client's JWKS for registration, and keeps only the public members we rely on. */
export function parsePublicJwks(input: unknown): PublicJwks {
  const keys = (input as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) throw new JwksError('a JWKS needs a non-empty "keys" array');
  const out: PublicJwk[] = [];
  keys.forEach((raw: unknown, i) => {
    if (raw && typeof raw === 'object' && PRIVATE_MEMBERS.some((m) => m in raw)) {
      throw new JwksError(`keys[${i}] contains private or secret key material; register the public key only`);
    }
    const parsed = jwk.safeParse(raw);
    if (!parsed.success) {
      throw new JwksError(
        `keys[${i}] is not a usable signing key (need kid, and kty RSA with n/e or kty EC on P-384 with x/y; ` +
          `alg RS384 or ES384 if given): ${parsed.error.issues.map((x) => x.path.join('.') || x.message).join(', ')}`,
      );
    }
    const k = parsed.data;
    if (k.key_ops && !k.key_ops.includes('verify'))
      throw new JwksError(`keys[${i}] key_ops does not allow verify`);
    if (k.kty === 'RSA' && Buffer.from(k.n, 'base64url').length < 256) {
      throw new JwksError(`keys[${i}] RSA modulus is shorter than 2048 bits`);
    }
    out.push(k);
  });
  const kids = out.map((k) => k.kid);
  if (new Set(kids).size !== kids.length) throw new JwksError('kid values must be unique within the JWKS');
  return { keys: out };
}

/** Whether a key can verify a signature made with alg (kty and curve match, and its own alg if it has one). */
export function keyFitsAlg(k: PublicJwk, alg: SigningAlg): boolean {
  if (k.alg !== undefined && k.alg !== alg) return false;
  return alg === 'RS384' ? k.kty === 'RSA' : k.kty === 'EC' && k.crv === 'P-384';
}

/** The public members only, e.g. to publish a key whose JWK was exported from a key pair. */
export function publicPart(k: Record<string, unknown>, kid: string, alg: SigningAlg): PublicJwk {
  return k.kty === 'RSA'
    ? { kty: 'RSA', n: String(k.n), e: String(k.e), kid, alg, use: 'sig' }
    : { kty: 'EC', crv: 'P-384', x: String(k.x), y: String(k.y), kid, alg, use: 'sig' };
}

/** Imports a JWK as an asymmetric key; a symmetric ("oct") key is refused rather than cast. */
export async function importAsymmetric(k: JWK, alg: string): Promise<CryptoKey> {
  const key = await importJWK(k, alg);
  if (key instanceof Uint8Array) throw new JwksError('expected an asymmetric key');
  return key;
}
