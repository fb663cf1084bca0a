/**
 * Admin CLI for SMART clients and the server's signing keys: `npm run clients -- <command>` (see USAGE).
 * It opens the database from the same configuration as the server (DATABASE_URL, else the embedded
 * PGlite under DATA_DIR, which only one process may open at a time: stop the server first).
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../../config/config.js';
import type { Database } from '../../database/database.js';
import { openDatabase, openKeyProvider } from '../../store/storage.factory.js';
import { ClientRepository } from '../client.repository.js';
import { SigningKeyRepository } from '../signing-key.repository.js';
import { SigningKeyService } from '../signing-key.service.js';
import { USAGE, UsageError, runCommand } from './clients.commands.js';

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    strict: true,
    options: {
      id: { type: 'string' },
      name: { type: 'string' },
      jwks: { type: 'string' },
      scope: { type: 'string' },
      replace: { type: 'boolean' },
      kid: { type: 'string' },
      alg: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length !== 1) throw new UsageError(USAGE);
  const config = loadConfig();
  let db: Database;
  try {
    db = await openDatabase(config);
  } catch (err) {
    // E.g. the embedded database is locked by a running server: the message says so and names no secret.
    throw new UsageError(`cannot open the database: ${(err as Error).message}`);
  }
  try {
    await runCommand(positionals[0] ?? '', values, {
      clients: new ClientRepository(db),
      signingKeys: async () => {
        const repo = new SigningKeyRepository(db);
        return { repo, service: new SigningKeyService(repo, openKeyProvider(config)) };
      },
      out: (line) => process.stdout.write(`${line}\n`),
    });
  } finally {
    await db.close();
  }
}

main().catch((err: unknown) => {
  const known =
    err instanceof UsageError ||
    err instanceof ConfigError ||
    (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
  process.stderr.write(
    `clients: ${known ? (err as Error).message : `unexpected error (${(err as Error).name})`}\n`,
  );
  process.exit(1);
});
