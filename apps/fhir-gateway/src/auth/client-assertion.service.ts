import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type CryptoKey } from 'jose';
import type { ClientRecord, ClientRepository } from './client.repository.js';
import { importAsymmetric, isSigningAlg, keyFitsAlg } from './jwks.js';
import { OAuthError } from './oauth-error.js';

/** SMART: "exp ... SHALL be no more than five minutes in the future". */
export const MAX_ASSERTION_LIFETIME_S = 300;
/** Tolerated clock difference between the client and us, in seconds. */
export const CLOCK_SKEW_S = 5;
const MAX_ASSERTION_CHARS = 16_384;
const MAX_JTI_CHARS = 256;

/**
 * Authenticates a client by its `private_key_jwt` assertion (RFC 7523 §3, SMART backend services
 * https://hl7.org/fhir/smart-app-launch/backend-services.html#authenticating-to-the-token-endpoint).
 * Every failure is `invalid_client`, as SMART requires; the description names the check, nothing more.
 */
export class ClientAssertionService {
  constructor(
    private readonly clients: ClientRepository,
    /** The token endpoint URL: the only audience accepted. */
    private readonly tokenUrl: string,
    private readonly now: () => number = Date.now,
  ) {}

  async verify(assertion: string, clientIdParam?: string): Promise<ClientRecord> {
    if (assertion.length > MAX_ASSERTION_CHARS) throw fail('client assertion is too large');
    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: ReturnType<typeof decodeJwt>;
    try {
      header = decodeProtectedHeader(assertion);
      unverified = decodeJwt(assertion);
    } catch {
      throw fail('client assertion is not a well-formed signed JWT');
    }
    // The algorithm allowlist comes first: "none", HMAC (the public key used as a shared secret) and
    // anything else never reach a verifier.
    const alg = header.alg;
    if (!isSigningAlg(alg)) throw fail('client assertion must be signed with RS384 or ES384');
    if (header.typ !== undefined && header.typ.toUpperCase() !== 'JWT') {
      throw fail('client assertion typ must be JWT');
    }
    const clientId = unverified.iss;
    if (
      typeof clientId !== 'string' ||
      clientId.length === 0 ||
      clientId.length > 200 ||
      unverified.sub !== clientId
    ) {
      throw fail('client assertion iss and sub must both be the client_id');
    }
    if (clientIdParam !== undefined && clientIdParam !== clientId) {
      throw fail('client_id does not match the client assertion');
    }

    const client = await this.clients.findById(clientId);
    if (!client || !client.enabled) throw fail('unknown or disabled client');

    // SMART: the header kid "SHALL be unique within the client's JWK Set"; it must pick exactly one key.
    if (typeof header.kid !== 'string' || header.kid.length === 0)
      throw fail('client assertion header needs a kid');
    const matches = client.jwks.keys.filter((k) => k.kid === header.kid && keyFitsAlg(k, alg));
    if (matches.length !== 1) {
      throw fail(
        matches.length === 0 ? 'kid matches no registered key for this alg' : 'kid matches several keys',
      );
    }

    let key: CryptoKey;
    try {
      key = await importAsymmetric(matches[0]!, alg);
    } catch {
      throw fail('the registered key cannot be used');
    }
    const nowS = Math.floor(this.now() / 1000);
    let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
    try {
      ({ payload } = await jwtVerify(assertion, key, {
        algorithms: [alg],
        issuer: clientId,
        subject: clientId,
        audience: this.tokenUrl,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'jti'],
        clockTolerance: CLOCK_SKEW_S,
        currentDate: new Date(nowS * 1000),
      }));
    } catch (err) {
      throw fail(describe(err));
    }
    const exp = payload.exp!;
    if (exp > nowS + MAX_ASSERTION_LIFETIME_S + CLOCK_SKEW_S) {
      throw fail('client assertion exp is more than five minutes in the future');
    }
    if (payload.iat !== undefined && payload.iat > nowS + CLOCK_SKEW_S)
      throw fail('client assertion iat is in the future');
    const jti = payload.jti!;
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_CHARS)
      throw fail('client assertion jti is invalid');

    // Only after the signature verified, so nobody can burn another client's jti values.
    if (!(await this.clients.recordJti(clientId, jti, new Date(exp * 1000)))) {
      throw fail('client assertion jti was already used');
    }
    return client;
  }
}

function fail(description: string): OAuthError {
  return new OAuthError('invalid_client', description);
}

function describe(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'client assertion has expired';
  if (err instanceof errors.JWTClaimValidationFailed) return `client assertion ${err.claim} claim is invalid`;
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'client assertion signature is invalid';
  return 'client assertion is invalid';
}
