import cluster from 'node:cluster';
import { createGateway } from './app.factory.js';
import { AuthModule } from './auth/auth.module.js';
import { superviseWorkers } from './cluster.js';
import { ConfigError, loadConfig } from './config/config.js';
import { createLogger } from './http/logger.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  if (config.workers > 1 && cluster.isPrimary) {
    await superviseWorkers(config.workers, createLogger(config));
    return;
  }
  const gateway = await createGateway(config, () => AuthModule);
  await gateway.app.listen({ host: config.host, port: config.port });
  gateway.logger.info(
    { url: `${config.baseUrl}/fhir`, database: gateway.storage.db.kind, keys: config.keys.kind },
    'fhir gateway listening',
  );
  let stopping = false;
  const stop = (signal: string) => {
    // A cluster worker hears Ctrl-C from the terminal and then SIGTERM from its primary: close once.
    if (stopping) return;
    stopping = true;
    gateway.logger.info({ signal }, 'shutting down');
    gateway.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${(err as Error).message}\n`);
  process.exit(1);
});
