import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../database/database.js';
import { clientKey, freshDatabase, testKeyProvider } from '../auth.fixtures.js';
import { ClientRepository } from '../client.repository.js';
import { SigningKeyRepository } from '../signing-key.repository.js';
import { SigningKeyService } from '../signing-key.service.js';
import { UsageError, loadJwks, runCommand, type CommandDeps } from './clients.commands.js';

let db: Database;
let deps: CommandDeps;
let out: string[];
let jwks: string;

beforeAll(async () => {
  db = await freshDatabase();
  const repo = new SigningKeyRepository(db);
  const service = new SigningKeyService(repo, testKeyProvider());
  await service.ensureKey();
  jwks = JSON.stringify({ keys: [(await clientKey('ES384', 'k1')).publicJwk] });
  deps = {
    clients: new ClientRepository(db),
    signingKeys: async () => ({ repo, service }),
    out: (l) => out.push(l),
    fetchFn: (async (url: URL | string) =>
      String(url) === 'https://ehr.example.org/jwks.json'
        ? new Response(jwks, { status: 200 })
        : new Response('nope', { status: 404 })) as typeof fetch,
  };
});
afterAll(async () => db.close());
beforeEach(async () => {
  out = [];
  await db.exec('DELETE FROM auth_client');
});

const fails = (p: Promise<unknown>, message: RegExp) => expect(p).rejects.toThrow(message);

describe('clients CLI commands', () => {
  it('register, list, disable, enable, replace', async () => {
    await runCommand(
      'register',
      { id: 'ehr-1', name: 'EHR', jwks, scope: 'system/Patient.read system/*.s' },
      deps,
    );
    expect(out[0]).toMatch(/^registered ehr-1: system\/Patient.rs system\/\*.s; keys k1$/);
    await fails(
      runCommand('register', { id: 'ehr-1', name: 'EHR', jwks, scope: 'system/*.rs' }, deps),
      /exists/,
    );
    await runCommand('disable', { id: 'ehr-1' }, deps);
    await runCommand(
      'register',
      { id: 'ehr-1', name: 'EHR 2', jwks, scope: 'system/*.rs', replace: true },
      deps,
    );
    await runCommand('list', {}, deps);
    expect(out.at(-1)).toBe('ehr-1\tdisabled\t"EHR 2"\tsystem/*.rs\tk1');
    await runCommand('enable', { id: 'ehr-1' }, deps);
    expect((await deps.clients.findById('ehr-1'))!.enabled).toBe(true);
    await fails(runCommand('disable', { id: 'nobody' }, deps), /no client nobody/);
  });

  it('refuses bad input with a usage error', async () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ name: 'x', jwks, scope: 'system/*.rs' }, /--id is required/],
      [{ id: 'a b', name: 'x', jwks, scope: 'system/*.rs' }, /--id may contain/],
      [{ id: 'a', name: 'x', jwks, scope: 'system/*.rs typo' }, /--scope/],
      [{ id: 'a', name: 'x', jwks: '{"keys":[]}', scope: 'system/*.rs' }, /non-empty/],
      [{ id: 'a', name: 'x', jwks: '{not json', scope: 'system/*.rs' }, /not valid JSON/],
      [{ id: 'a', name: 'x', jwks: '/nonexistent/jwks.json', scope: 'system/*.rs' }, /cannot read/],
    ];
    for (const [args, message] of bad) {
      const err = await runCommand('register', args, deps).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UsageError);
      expect((err as Error).message).toMatch(message);
    }
    await fails(runCommand('frobnicate', {}, deps), /usage:/);
  });

  it('signing key rotation and retirement', async () => {
    await runCommand('rotate-signing-key', { alg: 'ES384' }, deps);
    await runCommand('signing-keys', {}, deps);
    const kids = out.slice(1).map((l) => l.split('\t')[0]!);
    expect(kids).toHaveLength(2);
    await runCommand('retire-signing-key', { kid: kids[1]! }, deps);
    await fails(runCommand('retire-signing-key', { kid: kids[0]! }, deps), /only signing key/);
    await fails(runCommand('rotate-signing-key', { alg: 'HS256' }, deps), /RS384 or ES384/);
  });
});

describe('loadJwks', () => {
  it('reads a file, a URL or inline JSON', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwks-'));
    try {
      writeFileSync(join(dir, 'jwks.json'), jwks);
      for (const source of [join(dir, 'jwks.json'), 'https://ehr.example.org/jwks.json', jwks]) {
        expect((await loadJwks(source, deps.fetchFn!)).keys[0]!.kid).toBe('k1');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await expect(loadJwks('https://ehr.example.org/missing', deps.fetchFn!)).rejects.toThrow(
      /could not fetch/,
    );
    await expect(loadJwks('http://ehr.example.org/jwks.json', deps.fetchFn!)).rejects.toThrow(/https/);
  });

  it('refuses private or symmetric keys, weak RSA, duplicate kids and unsupported curves', async () => {
    const rsa = await clientKey('RS384', 'r1');
    const cases: [unknown, RegExp][] = [
      [{ keys: [{ ...rsa.privateJwk, kid: 'r1' }] }, /private or secret/],
      [{ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 's' }] }, /private or secret/],
      [{ keys: [{ ...rsa.publicJwk, n: Buffer.alloc(128, 1).toString('base64url') }] }, /2048/],
      [{ keys: [rsa.publicJwk, rsa.publicJwk] }, /unique/],
      [{ keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', kid: 'p256' }] }, /not a usable signing key/],
      [{ keys: [{ ...rsa.publicJwk, kid: undefined }] }, /not a usable signing key/],
      [{ keys: [{ ...rsa.publicJwk, alg: 'RS256' }] }, /not a usable signing key/],
    ];
    for (const [input, message] of cases) {
      await expect(loadJwks(JSON.stringify(input), deps.fetchFn!)).rejects.toThrow(message);
    }
  });
});
