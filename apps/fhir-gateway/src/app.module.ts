import { type DynamicModule, Module, type Provider, type Type } from '@nestjs/common';
import { ACCESS_VERIFIER, FHIR_ENGINE, LOGGER, STORAGE } from './app.providers.js';
import { APP_CONFIG, DATABASE, KEY_PROVIDER } from './app.tokens.js';
import type { AppConfig } from './config/config.js';
import type { FhirEngine } from './fhir/fhir-engine.js';
import { HealthController } from './health/health.controller.js';
import { FhirController } from './http/fhir.controller.js';
import type { Logger } from './http/logger.js';
import type { Storage } from './store/storage.factory.js';

export interface AppDependencies {
  config: AppConfig;
  storage: Storage;
  engine: FhirEngine;
  logger: Logger;
  /** The module that provides ACCESS_VERIFIER (SMART backend services in production). */
  authModule: DynamicModule | Type;
}

/**
 * The composition root hands over what it built outside Nest (config, database, storage, engine), so the
 * libs stay free of Nest and tests can assemble the same app around other parts.
 */
@Module({})
export class AppModule {
  static forRoot(deps: AppDependencies): DynamicModule {
    const core: Provider[] = [
      { provide: APP_CONFIG, useValue: deps.config },
      { provide: DATABASE, useValue: deps.storage.db },
      { provide: KEY_PROVIDER, useValue: deps.storage.provider },
      { provide: STORAGE, useValue: deps.storage },
      { provide: FHIR_ENGINE, useValue: deps.engine },
      { provide: LOGGER, useValue: deps.logger },
    ];
    return {
      module: AppModule,
      global: true,
      imports: [deps.authModule],
      providers: core,
      exports: core,
      controllers: [HealthController, FhirController],
    };
  }
}

export { ACCESS_VERIFIER };
