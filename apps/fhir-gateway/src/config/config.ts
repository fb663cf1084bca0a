import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { z } from 'zod';

/**
 * All settings, read once from the environment at boot and validated into one typed object (STYLE.md
 * rule 6). Bad settings stop the process with the full list of what is wrong. Fields marked secret are
 * never logged.
 */
const schema = z.object({
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Public base URL, used in Location headers, links and the token audience. Defaults to http://HOST:PORT. */
  BASE_URL: z.url().optional(),
  /** A real Postgres server; when unset the embedded PGlite database under DATA_DIR is used. */
  DATABASE_URL: z.string().optional(),
  DATA_DIR: z.string().default('.data'),
  /** Key-encryption keys from the environment ("id:base64,..."). When unset, a local keyring file is used. */
  FHIRGW_KEK: z.string().optional(),
  KEYRING_PATH: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(16 * 1024 * 1024),
  /** SMART access token lifetime; SMART backend services asks for 300 s or less. */
  TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(300).default(300),
  /**
   * Server processes sharing the port (node:cluster): a number, or "auto" for one per CPU core on
   * Postgres. More than one needs DATABASE_URL: PGlite is embedded in a single process, so "auto" is 1 there.
   */
  WORKERS: z.union([z.literal('auto'), z.coerce.number().int().min(1).max(64)]).default(1),
});

export type RawConfig = z.infer<typeof schema>;

export interface AppConfig {
  host: string;
  port: number;
  baseUrl: string;
  database: { kind: 'postgres'; url: string } | { kind: 'pglite'; dataDir: string | undefined };
  dataDir: string;
  keys: { kind: 'env'; spec: string } | { kind: 'keyring'; path: string };
  logLevel: RawConfig['LOG_LEVEL'];
  maxBodyBytes: number;
  tokenTtlSeconds: number;
  /** Server processes; 1 serves in the process that started. */
  workers: number;
}

export const SECRET_SETTINGS = ['FHIRGW_KEK', 'DATABASE_URL'] as const;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** env is a parameter so tests can build configs without touching process.env. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<AppConfig> = {},
): AppConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    // Name the setting and the rule, never the value: some settings are secrets.
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const c = parsed.data;
  const workers = c.WORKERS !== 'auto' ? c.WORKERS : c.DATABASE_URL ? availableParallelism() : 1;
  if (workers > 1 && !c.DATABASE_URL) {
    throw new ConfigError([
      'WORKERS: more than one worker needs DATABASE_URL (the embedded PGlite database serves one process)',
    ]);
  }
  const dataDir = resolve(c.DATA_DIR);
  const base = (c.BASE_URL ?? `http://${c.HOST}:${c.PORT}`).replace(/\/+$/, '');
  return {
    host: c.HOST,
    port: c.PORT,
    baseUrl: base,
    database: c.DATABASE_URL
      ? { kind: 'postgres', url: c.DATABASE_URL }
      : { kind: 'pglite', dataDir: resolve(dataDir, 'pglite') },
    dataDir,
    keys: c.FHIRGW_KEK
      ? { kind: 'env', spec: c.FHIRGW_KEK }
      : { kind: 'keyring', path: resolve(c.KEYRING_PATH ?? resolve(dataDir, 'keyring.json')) },
    logLevel: c.LOG_LEVEL,
    maxBodyBytes: c.MAX_BODY_BYTES,
    tokenTtlSeconds: c.TOKEN_TTL_SECONDS,
    workers,
    ...overrides,
  };
}
