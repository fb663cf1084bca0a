import { decodeProtectedHeader, jwtVerify } from 'jose';
import type { AccessVerifier } from '../app.providers.js';
import { FhirError } from '../fhir/outcomes.js';
import type { ClientRepository } from './client.repository.js';
import { isSigningAlg } from './jwks.js';
import { ScopeSet } from './scope-set.js';
import type { SigningKeyService } from './signing-key.service.js';
import { ACCESS_TOKEN_TYP, type TokenSettings } from './token.service.js';

export interface AuthenticatedClient {
  clientId: string;
  scopes: ScopeSet;
  /** The access token's jti, for audit records. */
  tokenId: string;
}

const MAX_TOKEN_CHARS = 8_192;
const TOKEN_CACHE_SIZE = 10_000;
/** A disabled client loses access within this time, not only when its last token expires. */
const CLIENT_STATUS_TTL_MS = 5_000;

/**
 * Verifies the bearer access tokens this server issued (RFC 6750), for every /fhir request. Verified
 * tokens are cached until they expire, so the hot path pays one signature check per token, not per
 * request. Failures are 401 OperationOutcomes with a WWW-Authenticate challenge that says only which
 * broad check failed (RFC 6750 §3).
 */
export class AuthService implements AccessVerifier {
  private readonly verified = new Map<string, { client: AuthenticatedClient; exp: number }>();
  private readonly clientStatus = new Map<string, { enabled: boolean; at: number }>();

  constructor(
    private readonly keys: SigningKeyService,
    private readonly clients: ClientRepository,
    private readonly settings: Pick<TokenSettings, 'issuer' | 'audience'>,
    private readonly now: () => number = Date.now,
  ) {}

  async authenticate(authorizationHeader: string | undefined): Promise<AuthenticatedClient> {
    if (!authorizationHeader)
      throw this.challenge(undefined, 'an access token is required (Authorization: Bearer)');
    const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(authorizationHeader);
    if (!m || m[1]!.length > MAX_TOKEN_CHARS)
      throw this.challenge('invalid_request', 'malformed Authorization header');
    const token = m[1]!;
    const nowS = Math.floor(this.now() / 1000);

    let entry = this.verified.get(token);
    if (entry && entry.exp <= nowS) {
      this.verified.delete(token);
      entry = undefined;
    }
    if (!entry) {
      entry = await this.verify(token, nowS);
      if (this.verified.size >= TOKEN_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, entry);
    }
    if (!(await this.clientEnabled(entry.client.clientId)))
      throw this.challenge('invalid_token', 'invalid access token');
    return entry.client;
  }

  private async verify(token: string, nowS: number): Promise<{ client: AuthenticatedClient; exp: number }> {
    let kid: string | undefined;
    let alg: string | undefined;
    try {
      ({ kid, alg } = decodeProtectedHeader(token));
    } catch {
      throw this.challenge('invalid_token', 'invalid access token');
    }
    // Allowlist before anything else: no "none", no HMAC with a public key as the secret.
    if (!isSigningAlg(alg) || typeof kid !== 'string')
      throw this.challenge('invalid_token', 'invalid access token');
    const key = await this.keys.verifyKey(kid);
    if (!key || key.alg !== alg) throw this.challenge('invalid_token', 'invalid access token');
    try {
      const { payload } = await jwtVerify(token, key.verifyKey, {
        algorithms: [key.alg],
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        typ: ACCESS_TOKEN_TYP,
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        currentDate: new Date(nowS * 1000),
      });
      const clientId = payload.client_id ?? payload.sub;
      if (
        typeof clientId !== 'string' ||
        typeof payload.scope !== 'string' ||
        typeof payload.jti !== 'string'
      ) {
        throw new Error('claims');
      }
      return {
        client: { clientId, scopes: ScopeSet.parse(payload.scope), tokenId: payload.jti },
        exp: payload.exp!,
      };
    } catch (err) {
      const expired = (err as { code?: string }).code === 'ERR_JWT_EXPIRED';
      throw this.challenge(
        'invalid_token',
        expired ? 'the access token has expired' : 'invalid access token',
      );
    }
  }

  private async clientEnabled(clientId: string): Promise<boolean> {
    const hit = this.clientStatus.get(clientId);
    if (hit && this.now() - hit.at < CLIENT_STATUS_TTL_MS) return hit.enabled;
    const client = await this.clients.findById(clientId);
    const enabled = client?.enabled === true;
    this.clientStatus.set(clientId, { enabled, at: this.now() });
    return enabled;
  }

  private challenge(error: 'invalid_request' | 'invalid_token' | undefined, message: string): FhirError {
    const parts = [`realm="${this.settings.audience}"`];
    if (error) parts.push(`error="${error}"`, `error_description="${message}"`);
    return new FhirError('unauthorized', message, {
      headers: { 'www-authenticate': `Bearer ${parts.join(', ')}` },
    });
  }
}
