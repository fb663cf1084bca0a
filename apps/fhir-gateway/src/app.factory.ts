import 'reflect-metadata';
import { type DynamicModule, type INestApplication, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { randomUUID } from 'node:crypto';
import { AppModule } from './app.module.js';
import type { AppConfig } from './config/config.js';
import { createFhirEngine } from './fhir/fhir-engine.factory.js';
import { SearchIndex } from './search/search-index.js';
import { reindexIfStale } from './search/search-reindex.js';
import { FhirExceptionFilter } from './http/exception.filter.js';
import type { DestinationStream } from 'pino';
import { createLogger, type Logger } from './http/logger.js';
import { createStorage, openDatabase, openKeyProvider, type Storage } from './store/storage.factory.js';

export interface Gateway {
  app: NestFastifyApplication;
  storage: Storage;
  logger: Logger;
  close(): Promise<void>;
}

/** FHIR's JSON media types; the JSON Patch type is the body of PATCH (R4 http.html#patch). */
const JSON_TYPES = [
  'application/json',
  'application/fhir+json',
  'application/json+fhir',
  'application/json-patch+json',
];

/**
 * Builds the whole gateway: database (migrated), keys, storage, FHIR engine, Nest on Fastify. main.ts and
 * the e2e tests both start it this way.
 */
export async function createGateway(
  config: AppConfig,
  authModule: (deps: { config: AppConfig; storage: Storage }) => DynamicModule | Type,
  options: { logDestination?: DestinationStream } = {},
): Promise<Gateway> {
  const logger = createLogger(config, options.logDestination);
  const db = await openDatabase(config);
  const storage = createStorage(db, openKeyProvider(config));
  try {
    // Before serving: a query must never miss resources indexed under an older token scheme.
    await reindexIfStale(storage.store, new SearchIndex(storage.keys), (msg, fields) =>
      logger.info(fields, msg),
    );
  } catch (err) {
    await db.close();
    throw err;
  }
  const engine = createFhirEngine(storage.store, config.baseUrl);
  const adapter = new FastifyAdapter({
    bodyLimit: config.maxBodyBytes,
    // Client-supplied ids are echoed only if they look like ids, so a header cannot inject into logs.
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(given) ? given : randomUUID();
    },
    logger: false,
    trustProxy: false,
  });
  let app: NestFastifyApplication;
  try {
    app = await NestFactory.create<NestFastifyApplication>(
      AppModule.forRoot({ config, storage, engine, logger, authModule: authModule({ config, storage }) }),
      adapter,
      { logger: false, bufferLogs: false, bodyParser: false },
    );
  } catch (err) {
    await db.close();
    throw err;
  }
  const fastify = app.getHttpAdapter().getInstance();
  // Own JSON parsing for every FHIR JSON type, with prototype-poisoning protection; a syntax error is a
  // 400 OperationOutcome (via the filter), an unknown type a 415.
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    JSON_TYPES,
    { parseAs: 'string' },
    fastify.getDefaultJsonParser('error', 'error'),
  );
  // OAuth token requests are form-encoded (RFC 6749 §4.4.2).
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_req, body, done) => {
      // A repeated key keeps all its values (search forms repeat parameters to AND them).
      const form: Record<string, string | string[]> = {};
      for (const [k, v] of new URLSearchParams(body as string)) {
        const prev = form[k];
        form[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
      done(null, form);
    },
  );
  app.useGlobalFilters(new FhirExceptionFilter(logger));
  fastify.addHook('onResponse', (req, reply, done) => {
    // Route shape only: query strings can hold search values, which may be PHI.
    logger.info(
      {
        reqId: req.id,
        method: req.method,
        route: routeShape(req.url),
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request',
    );
    done();
  });
  await app.init();
  await fastify.ready();
  return {
    app,
    storage,
    logger,
    close: async () => {
      await app.close();
      await db.close();
    },
  };
}

/** "/fhir/Patient/8c1.../_history/2?name=x" -> "/fhir/Patient/:id/_history/:vid" */
function routeShape(url: string): string {
  const path = url.split('?')[0] ?? '';
  const parts = path.split('/');
  return parts
    .map((p, i) => {
      if (i === 3 && parts[1] === 'fhir' && p !== '_history' && p !== '_search' && !p.startsWith('$'))
        return ':id';
      if (i === 5 && parts[4] === '_history') return ':vid';
      return p;
    })
    .join('/');
}

export type { INestApplication };
