/**
 * `npm run -s token [-- --scope "system/Patient.rs"]`: prints an access token for the dev client of a
 * running gateway on the embedded default, for curl:
 *   curl -H "Authorization: Bearer $(npm run -s token)" http://127.0.0.1:8080/fhir/Patient
 * Only the token goes to stdout; errors go to stderr with exit status 1.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../../config/config.js';
import { DevTokenError, requestDevToken } from './dev-token.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { scope: { type: 'string' } }, strict: true });
  const token = await requestDevToken({
    config: loadConfig(),
    ...(values.scope ? { scope: values.scope } : {}),
  });
  process.stdout.write(`${token}\n`);
}

main().catch((err: unknown) => {
  const known =
    err instanceof DevTokenError ||
    err instanceof ConfigError ||
    (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  process.stderr.write(
    `token: ${known ? (err as Error).message : `unexpected error (${(err as Error).name})`}\n`,
  );
  process.exit(1);
});
