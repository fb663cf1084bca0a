/**
 * Key management, run with the server's configuration (`npm run keys -- <command>`):
 *   status        KEK in use, and how many data keys each KEK version wraps
 *   rotate-kek    local keyring only: add a new KEK version and make it current
 *   rewrap        rewrap every data key under the current KEK (after a rotation), so old KEKs can retire
 *   rotate-deks   retire every active data key: new writes get fresh data keys; old versions stay readable
 * On the embedded database, stop the server first (one process at a time).
 */
import { LocalKeyringProvider } from '#crypto';
import { ConfigError, loadConfig } from '../config/config.js';
import { openDatabase, openKeyProvider } from '../store/storage.factory.js';
import { rewrapDataKeys } from '../store/key-rotation.js';

async function main(argv: string[]): Promise<void> {
  const command = argv[0];
  const config = loadConfig();
  if (command === 'rotate-kek') {
    if (config.keys.kind !== 'keyring') {
      throw new Error('FHIRGW_KEK is set: rotate by appending a new "id:key" to it, then run `rewrap`');
    }
    const id = LocalKeyringProvider.openOrCreate(config.keys.path).rotate();
    process.stdout.write(`new current key-encryption key: ${id}; run \`npm run keys -- rewrap\` next\n`);
    return;
  }
  const provider = openKeyProvider(config);
  const db = await openDatabase(config);
  try {
    switch (command) {
      case 'status': {
        const { rows } = await db.query<{ kek_id: string; active: number; retired: number }>(
          `SELECT kek_id, count(*) FILTER (WHERE retired_at IS NULL)::int AS active,
                  count(*) FILTER (WHERE retired_at IS NOT NULL)::int AS retired
             FROM data_key GROUP BY kek_id ORDER BY kek_id`,
        );
        process.stdout.write(`current KEK: ${provider.currentKekId()}\n`);
        for (const r of rows)
          process.stdout.write(`  ${r.kek_id}: ${r.active} active, ${r.retired} retired data keys\n`);
        return;
      }
      case 'rewrap': {
        const n = await rewrapDataKeys(db, provider);
        process.stdout.write(`rewrapped ${n} data keys under ${provider.currentKekId()}\n`);
        return;
      }
      case 'rotate-deks': {
        const r = await db.query('UPDATE data_key SET retired_at = now() WHERE retired_at IS NULL');
        process.stdout.write(
          `retired ${r.rowCount} data keys; restart running servers so they pick new ones\n`,
        );
        return;
      }
      case undefined:
      default:
        process.stdout.write('usage: npm run keys -- status | rotate-kek | rewrap | rotate-deks\n');
        process.exitCode = command === undefined || command === '--help' ? 0 : 2;
    }
  } finally {
    await db.close();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`${err instanceof ConfigError ? err.message : `error: ${(err as Error).message}`}\n`);
  process.exit(1);
});
