import { readFile } from 'node:fs/promises';
import type { ClientRepository } from '../client.repository.js';
import { JwksError, isSigningAlg, parsePublicJwks, type PublicJwks } from '../jwks.js';
import { ScopeError, ScopeSet } from '../scope-set.js';
import type { SigningKeyRepository } from '../signing-key.repository.js';
import type { SigningKeyService } from '../signing-key.service.js';

/** A mistake of the operator (bad arguments); its message is printed as is. */
export class UsageError extends Error {}

export const USAGE = `usage: npm run clients -- <command> [options]
  register --id <id> --name <name> --jwks <file | https URL | inline JSON> --scope "<scopes>" [--replace]
      Registers a SMART backend-services client with its public JWKS and allowed system scopes
      (e.g. "system/*.cruds" or "system/Patient.rs system/Observation.rs"). --replace updates an
      existing client's name, keys and scopes (its enabled flag is kept).
  list                          Lists clients (id, enabled, scopes, key ids).
  disable --id <id>             Refuses new tokens at once; issued tokens stop working within seconds.
  enable --id <id>
  signing-keys                  Lists the server's active token signing keys (newest signs).
  rotate-signing-key [--alg RS384|ES384]
                                Adds a new signing key; older keys stay published until retired.
  retire-signing-key --kid <kid>
                                Unpublishes a key; wait the token TTL (300 s) after a rotation first.`;

const CLIENT_ID = /^[A-Za-z0-9._~-]{1,200}$/;

export interface CommandDeps {
  clients: ClientRepository;
  /** Only for the signing-key commands, which need the key provider. */
  signingKeys?: () => Promise<{ service: SigningKeyService; repo: SigningKeyRepository }>;
  fetchFn?: typeof fetch;
  out: (line: string) => void;
}

export type Args = Record<string, string | boolean | undefined>;

export async function runCommand(command: string, args: Args, deps: CommandDeps): Promise<void> {
  switch (command) {
    case 'register':
      return register(args, deps);
    case 'list':
      for (const c of await deps.clients.list()) {
        deps.out(
          [
            c.id,
            c.enabled ? 'enabled' : 'disabled',
            JSON.stringify(c.name),
            c.scopes,
            c.jwks.keys.map((k) => k.kid).join(','),
          ].join('\t'),
        );
      }
      return;
    case 'disable':
    case 'enable': {
      const id = required(args, 'id');
      if (!(await deps.clients.setEnabled(id, command === 'enable'))) throw new UsageError(`no client ${id}`);
      deps.out(`${command}d ${id}`);
      return;
    }
    case 'signing-keys': {
      const { repo } = await needKeys(deps);
      for (const k of await repo.listActive()) deps.out([k.kid, k.alg, k.createdAt.toISOString()].join('\t'));
      return;
    }
    case 'rotate-signing-key': {
      const alg = typeof args.alg === 'string' ? args.alg : 'RS384';
      if (!isSigningAlg(alg)) throw new UsageError('--alg must be RS384 or ES384');
      const { service } = await needKeys(deps);
      deps.out(
        `new signing key ${await service.rotate(alg)} (${alg}); running gateways pick it up within a minute`,
      );
      return;
    }
    case 'retire-signing-key': {
      const kid = required(args, 'kid');
      const { service } = await needKeys(deps);
      const active = await service.jwks();
      if (active.keys.length === 1 && active.keys[0]?.kid === kid) {
        throw new UsageError('refusing to retire the only signing key; rotate-signing-key first');
      }
      if (!(await service.retire(kid))) throw new UsageError(`no active signing key ${kid}`);
      deps.out(`retired ${kid}`);
      return;
    }
    default:
      throw new UsageError(USAGE);
  }
}

async function register(args: Args, deps: CommandDeps): Promise<void> {
  const id = required(args, 'id');
  if (!CLIENT_ID.test(id)) throw new UsageError('--id may contain letters, digits and . _ ~ - only');
  const name = required(args, 'name');
  let scopes: string;
  try {
    scopes = ScopeSet.parseStrict(required(args, 'scope')).toString();
  } catch (err) {
    if (err instanceof ScopeError) throw new UsageError(`--scope: ${err.message}`);
    throw err;
  }
  const jwks = await loadJwks(required(args, 'jwks'), deps.fetchFn ?? fetch);
  const client = { id, name, jwks, scopes };
  if (args.replace === true) {
    if (!(await deps.clients.update(client))) throw new UsageError(`no client ${id} to replace`);
    deps.out(`updated ${id}: ${scopes}; keys ${jwks.keys.map((k) => k.kid).join(', ')}`);
  } else {
    if (!(await deps.clients.insert(client)))
      throw new UsageError(`client ${id} exists; add --replace to update it`);
    deps.out(`registered ${id}: ${scopes}; keys ${jwks.keys.map((k) => k.kid).join(', ')}`);
  }
}

/** The JWKS from inline JSON, an https (or local http) URL fetched once now, or a file. */
export async function loadJwks(source: string, fetchFn: typeof fetch): Promise<PublicJwks> {
  let text: string;
  if (source.trimStart().startsWith('{')) {
    text = source;
  } else if (/^https?:\/\//.test(source)) {
    const url = new URL(source);
    const local = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
    if (url.protocol !== 'https:' && !local) throw new UsageError('--jwks URLs must be https');
    const res = await fetchFn(url, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
    if (!res?.ok) throw new UsageError(`could not fetch the JWKS from ${url.origin}${url.pathname}`);
    text = await res.text();
  } else {
    text = await readFile(source, 'utf8').catch(() => {
      throw new UsageError(`cannot read the JWKS file ${source}`);
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError('--jwks is not valid JSON');
  }
  try {
    return parsePublicJwks(json);
  } catch (err) {
    if (err instanceof JwksError) throw new UsageError(`--jwks: ${err.message}`);
    throw err;
  }
}

function required(args: Args, name: string): string {
  const v = args[name];
  if (typeof v !== 'string' || v.trim() === '') throw new UsageError(`--${name} is required\n\n${USAGE}`);
  return v;
}

async function needKeys(
  deps: CommandDeps,
): Promise<{ service: SigningKeyService; repo: SigningKeyRepository }> {
  if (!deps.signingKeys) throw new UsageError('signing keys are not available here');
  return deps.signingKeys();
}
