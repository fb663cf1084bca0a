import cluster from 'node:cluster';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { AppConfig } from '../config/config.js';

/**
 * Structured JSON logs. Nothing from a request body, a query string or a decrypted resource is ever passed
 * to the logger: only ids, methods, route shapes, statuses and timings, none of which are PHI.
 */
export function createLogger(config: Pick<AppConfig, 'logLevel'>, destination?: DestinationStream): Logger {
  const options = {
    level: config.logLevel,
    // With WORKERS > 1 several processes write the same stream: say which one (and which is the primary).
    base: cluster.isWorker ? { service: 'fhir-gateway', pid: process.pid } : { service: 'fhir-gateway' },
    redact: { paths: ['req.headers.authorization', '*.authorization', '*.client_assertion'], remove: true },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
