import { Controller, Get, Header, Inject, Optional, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { LOGGER } from '../app.providers.js';
import { APP_CONFIG } from '../app.tokens.js';
import type { AppConfig } from '../config/config.js';
import type { Logger } from '../http/logger.js';
import type { PublicJwks } from './jwks.js';
import { SIGNING_ALGS } from './jwks.js';
import { OAuthError } from './oauth-error.js';
import { SigningKeyService } from './signing-key.service.js';
import { TokenService } from './token.service.js';

/**
 * SMART discovery and the token endpoint. Public routes: they are how a client gets a token.
 * https://hl7.org/fhir/smart-app-launch/conformance.html#metadata
 */
@Controller()
export class AuthController {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(TokenService) private readonly tokens: TokenService,
    @Inject(SigningKeyService) private readonly keys: SigningKeyService,
    @Optional() @Inject(LOGGER) private readonly logger?: Logger,
  ) {}

  @Get('.well-known/smart-configuration')
  @Header('cache-control', 'public, max-age=300')
  smartConfiguration(): Record<string, unknown> {
    const base = this.config.baseUrl;
    return {
      issuer: base,
      jwks_uri: `${base}/.well-known/jwks.json`,
      token_endpoint: `${base}/auth/token`,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: [...SIGNING_ALGS],
      grant_types_supported: ['client_credentials'],
      scopes_supported: ['system/*.cruds', 'system/*.rs', 'system/*.read', 'system/*.write'],
      capabilities: ['client-confidential-asymmetric', 'permission-v2'],
    };
  }

  @Get('.well-known/jwks.json')
  @Header('cache-control', 'public, max-age=60')
  async jwks(): Promise<PublicJwks> {
    return this.keys.jwks();
  }

  /**
   * https://hl7.org/fhir/smart-app-launch/backend-services.html#obtaining-an-access-token. Errors are
   * written here as RFC 6749 §5.2 JSON, not thrown: the global filter would turn them into
   * OperationOutcomes, which OAuth clients do not understand.
   */
  @Post('auth/token')
  async token(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    void reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' });
    try {
      if (!isForm(req.headers['content-type'])) {
        throw new OAuthError('invalid_request', 'send the request as application/x-www-form-urlencoded');
      }
      const body = await this.tokens.issue(req.body);
      // Security events for operations: who got which scopes, never the assertion or the token.
      this.logger?.info(
        { reqId: req.id, event: 'token-issued', clientId: body.client_id, scope: body.scope },
        'token',
      );
      const { client_id: _, ...response } = body;
      void reply.status(200).send(response);
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      this.logger?.warn(
        { reqId: req.id, event: 'token-refused', error: err.error, reason: err.description },
        'token',
      );
      void reply.status(err.status).send(err.toJSON());
    }
  }
}

function isForm(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase() === 'application/x-www-form-urlencoded';
}
