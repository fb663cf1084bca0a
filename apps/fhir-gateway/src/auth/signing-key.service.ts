import type { KeyProvider } from '#crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import { importAsymmetric, publicPart, type PublicJwk, type PublicJwks, type SigningAlg } from './jwks.js';
import type { SigningKeyRecord, SigningKeyRepository } from './signing-key.repository.js';

export interface ActiveKey {
  kid: string;
  alg: SigningAlg;
  publicJwk: PublicJwk;
  verifyKey: CryptoKey;
}

interface Keys {
  /** Newest first. */
  active: ActiveKey[];
  signer: { kid: string; alg: SigningAlg; key: CryptoKey };
  loadedAt: number;
}

/** How often a running gateway re-reads the key table, to pick up a rotation made by the CLI or a peer. */
const REFRESH_MS = 60_000;

/**
 * The server's access-token signing keys. Private keys live in the database only sealed (AES-256-GCM)
 * under the current KEK of the KeyProvider, with the kid and algorithm bound as AAD: a database dump or
 * backup alone yields no usable key, every gateway instance on a shared Postgres signs with the same key
 * set, and rotating the KEK follows the same path as the resource data keys. (A 0600 file under DATA_DIR
 * would work for the embedded default but not for several instances behind one DATABASE_URL.)
 *
 * Rotation: `rotate()` adds a key that signs from then on; older keys stay published so tokens they
 * signed keep verifying until they expire. Retire a key (CLI) once the token TTL has passed since the
 * rotation.
 */
export class SigningKeyService {
  private keys?: Keys;
  private loading?: Promise<Keys>;

  constructor(
    private readonly repo: SigningKeyRepository,
    private readonly provider: KeyProvider,
    private readonly now: () => number = Date.now,
  ) {}

  /** Creates the first key if there is none; called at startup so the first token request is fast. */
  async ensureKey(alg: SigningAlg = 'RS384'): Promise<void> {
    const existing = await this.repo.listActive();
    if (existing.length === 0) await this.repo.insert(await this.newKey(alg), { onlyIfNone: true });
    await this.reload();
  }

  /** Adds a new signing key and makes it current. Returns its kid. */
  async rotate(alg: SigningAlg = 'RS384'): Promise<string> {
    const record = await this.newKey(alg);
    await this.repo.insert(record);
    await this.reload();
    return record.kid;
  }

  async retire(kid: string): Promise<boolean> {
    const active = await this.repo.listActive();
    if (active.length === 1 && active[0]?.kid === kid) {
      throw new Error('refusing to retire the only signing key; rotate first');
    }
    const done = await this.repo.retire(kid);
    await this.reload();
    return done;
  }

  async signer(): Promise<Keys['signer']> {
    return (await this.current()).signer;
  }

  async jwks(): Promise<PublicJwks> {
    return { keys: (await this.current()).active.map((k) => k.publicJwk) };
  }

  /**
   * The verification key for a kid. An unknown kid triggers one reload (a peer may have rotated), at most
   * once per second so that tokens with made-up kids cannot hammer the database.
   */
  async verifyKey(kid: string): Promise<ActiveKey | undefined> {
    const keys = await this.current();
    const hit = keys.active.find((k) => k.kid === kid);
    if (hit || this.now() - keys.loadedAt < 1_000) return hit;
    return (await this.reload()).active.find((k) => k.kid === kid);
  }

  private async current(): Promise<Keys> {
    if (this.keys && this.now() - this.keys.loadedAt < REFRESH_MS) return this.keys;
    return this.reload();
  }

  private reload(): Promise<Keys> {
    // Concurrent callers share one load.
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async load(): Promise<Keys> {
    const records = await this.repo.listActive();
    const newest = records[0];
    if (!newest) throw new Error('no active token signing key; the auth module was not initialised');
    const active = await Promise.all(
      records.map(async (r) => ({
        kid: r.kid,
        alg: r.alg as SigningAlg,
        publicJwk: r.publicJwk,
        verifyKey: await importAsymmetric(r.publicJwk, r.alg),
      })),
    );
    const privateJwk = JSON.parse(
      (
        await this.provider.unwrap({ kekId: newest.kekId, wrapped: newest.wrappedPrivate }, aad(newest))
      ).toString('utf8'),
    ) as JWK;
    const signer = {
      kid: newest.kid,
      alg: newest.alg as SigningAlg,
      key: await importAsymmetric(privateJwk, newest.alg),
    };
    this.keys = { active, signer, loadedAt: this.now() };
    return this.keys;
  }

  private async newKey(alg: SigningAlg): Promise<Omit<SigningKeyRecord, 'createdAt'>> {
    const pair = await generateKeyPair(alg, {
      extractable: true,
      ...(alg === 'RS384' ? { modulusLength: 2048 } : {}),
    });
    const pub = await exportJWK(pair.publicKey);
    const kid = await calculateJwkThumbprint(pub, 'sha256');
    const priv = await exportJWK(pair.privateKey);
    const wrapped = await this.provider.wrap(Buffer.from(JSON.stringify(priv), 'utf8'), aad({ kid, alg }));
    return {
      kid,
      alg,
      publicJwk: publicPart(pub, kid, alg),
      kekId: wrapped.kekId,
      wrappedPrivate: wrapped.wrapped,
    };
  }
}

function aad(k: { kid: string; alg: string }): string {
  return `auth-signing-key:${k.kid}:${k.alg}`;
}
