import { Inject, Module, type OnModuleInit } from '@nestjs/common';
import type { KeyProvider } from '#crypto';
import { ACCESS_VERIFIER } from '../app.providers.js';
import { APP_CONFIG, DATABASE, KEY_PROVIDER } from '../app.tokens.js';
import type { AppConfig } from '../config/config.js';
import type { Database } from '../database/database.js';
import { AuthController } from './auth.controller.js';
import { AuthService } from './auth.service.js';
import { ClientAssertionService } from './client-assertion.service.js';
import { ClientRepository } from './client.repository.js';
import { ensureDevClient } from './dev-client.js';
import { SigningKeyRepository } from './signing-key.repository.js';
import { SigningKeyService } from './signing-key.service.js';
import { TokenService, type TokenSettings } from './token.service.js';

const TOKEN_SETTINGS = Symbol('TOKEN_SETTINGS');

export function tokenSettings(config: Pick<AppConfig, 'baseUrl' | 'tokenTtlSeconds'>): TokenSettings {
  return { issuer: config.baseUrl, audience: `${config.baseUrl}/fhir`, ttlSeconds: config.tokenTtlSeconds };
}

/**
 * SMART on FHIR backend services: discovery, the token endpoint and bearer-token verification. Needs
 * APP_CONFIG, DATABASE and KEY_PROVIDER from the app module (global). Exports AuthService, also bound to
 * ACCESS_VERIFIER for the FHIR controller. On init it makes sure a signing key exists and, on the embedded
 * default, registers the dev client.
 */
@Module({
  controllers: [AuthController],
  providers: [
    { provide: TOKEN_SETTINGS, useFactory: tokenSettings, inject: [APP_CONFIG] },
    { provide: ClientRepository, useFactory: (db: Database) => new ClientRepository(db), inject: [DATABASE] },
    {
      provide: SigningKeyRepository,
      useFactory: (db: Database) => new SigningKeyRepository(db),
      inject: [DATABASE],
    },
    {
      provide: SigningKeyService,
      useFactory: (repo: SigningKeyRepository, kp: KeyProvider) => new SigningKeyService(repo, kp),
      inject: [SigningKeyRepository, KEY_PROVIDER],
    },
    {
      provide: ClientAssertionService,
      useFactory: (clients: ClientRepository, c: AppConfig) =>
        new ClientAssertionService(clients, `${c.baseUrl}/auth/token`),
      inject: [ClientRepository, APP_CONFIG],
    },
    {
      provide: TokenService,
      useFactory: (
        a: ClientAssertionService,
        clients: ClientRepository,
        keys: SigningKeyService,
        s: TokenSettings,
      ) => new TokenService(a, clients, keys, s),
      inject: [ClientAssertionService, ClientRepository, SigningKeyService, TOKEN_SETTINGS],
    },
    {
      provide: AuthService,
      useFactory: (keys: SigningKeyService, clients: ClientRepository, s: TokenSettings) =>
        new AuthService(keys, clients, s),
      inject: [SigningKeyService, ClientRepository, TOKEN_SETTINGS],
    },
    { provide: ACCESS_VERIFIER, useExisting: AuthService },
  ],
  exports: [AuthService, ACCESS_VERIFIER, ClientRepository, SigningKeyService],
})
export class AuthModule implements OnModuleInit {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(SigningKeyService) private readonly keys: SigningKeyService,
    @Inject(ClientRepository) private readonly clients: ClientRepository,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.keys.ensureKey();
    await ensureDevClient(this.config, this.clients);
  }
}
