import { hkdfSync } from 'node:crypto';
import { BlindIndexer, open, seal, type DataKeyService } from '#crypto';
import type { AnyResource } from '../fhir/resource-json.js';
import { isPatientScoped, tokenDomain } from './patient-scope.js';
import { extractTokens } from './search-tokens.js';

export interface HashedToken {
  param: string;
  /** Hex of the truncated HMAC. */
  token: string;
}

/** Scope of the blind-index root key in data_key: wrapped under the KEK like every data key. */
export const SEARCH_KEY_SCOPE = 'search-index';

/**
 * Turns plaintext search tokens into blind-index tokens. Each domain is "<resource type>.<parameter>", so
 * the same value under two parameters gives unrelated tokens. The root key is loaded (or created) once,
 * by ready(), which callers await before opening a write transaction.
 */
export class SearchIndex {
  private loading?: Promise<BlindIndexer>;
  private indexer?: BlindIndexer;
  private cursorKey?: Buffer;
  private readonly references = new ReferenceTokenMemo(REFERENCE_MEMO_SIZE);

  constructor(private readonly keys: DataKeyService) {}

  async ready(): Promise<void> {
    this.loading ??= this.keys.keyForScope(SEARCH_KEY_SCOPE).then((k) => {
      this.cursorKey = Buffer.from(hkdfSync('sha256', k.key, 'fhir-gateway/search-cursor/v1', 'cursor', 32));
      return (this.indexer = new BlindIndexer(k.key));
    });
    await this.loading;
  }

  /**
   * The hashed tokens of a resource. `compartments` are its Patient compartments: with exactly one, the
   * patient-scoped parameters (patient-scope.ts) are keyed per that patient.
   */
  tokensOf(resource: AnyResource, compartments: readonly string[] = []): HashedToken[] {
    const patient = compartments.length === 1 ? compartments[0] : undefined;
    return extractTokens(resource).map((t) => ({
      param: t.param,
      token: this.hash(
        resource.resourceType,
        t.param,
        t.value,
        isPatientScoped(resource.resourceType, t.param) ? patient : undefined,
      ),
    }));
  }

  /** One token; `patientId` selects the per-patient key of a patient-scoped parameter. */
  hash(resourceType: string, param: string, value: string, patientId?: string): string {
    return this.hashAll(resourceType, param, [value], patientId)[0]!;
  }

  /** The tokens of several values of one parameter (and patient key), in their order. */
  hashAll(resourceType: string, param: string, values: readonly string[], patientId?: string): string[] {
    const indexer = this.indexer;
    if (!indexer) throw new Error('SearchIndex used before ready()');
    const domain = tokenDomain(resourceType, param, patientId);
    // A local reference ("r|Type/id") names ids, which the database holds in plaintext anyway, so its token
    // may be remembered. A chain's targets come back as hundreds of them on every page of its search:
    // 294 Patients cost 0.6 ms of HMAC per request. Nothing derived from another value (PHI) is kept, nor
    // the tokens of per-patient keys (one memo per patient would not be bounded by the parameters).
    const memo = patientId === undefined ? this.references.domain(domain) : undefined;
    return values.map((value) => {
      if (!memo || !value.startsWith('r|')) return indexer.token(domain, value).toString('hex');
      let token = memo.get(value);
      if (token === undefined) {
        token = indexer.token(domain, value).toString('hex');
        memo.set(value, token);
      }
      return token;
    });
  }

  /**
   * An opaque paging cursor: sorted pages carry the last row's sort values, which may be PHI, so they
   * travel sealed (AES-256-GCM) and bound to the search they belong to. Links then reveal nothing to
   * proxies or logs that see URLs.
   */
  sealCursor(value: unknown, bind: string): string {
    if (!this.cursorKey) throw new Error('SearchIndex used before ready()');
    return seal(this.cursorKey, Buffer.from(JSON.stringify(value)), Buffer.from(bind)).toString('base64url');
  }

  /** The value of a sealed cursor, or undefined when it was altered or belongs to another search. */
  openCursor(token: string, bind: string): unknown {
    if (!this.cursorKey) throw new Error('SearchIndex used before ready()');
    try {
      return JSON.parse(
        open(this.cursorKey, Buffer.from(token, 'base64url'), Buffer.from(bind)).toString('utf8'),
      );
    } catch {
      return undefined;
    }
  }
}

/** Reference tokens remembered: up to twice this many, the least recently used forgotten first (roughly). */
const REFERENCE_MEMO_SIZE = 50_000;

/**
 * A bounded memo of tokens per domain, in two generations: entries go into the recent generation until it
 * holds `size` of them; it then becomes the older one, and the generation before it is dropped. A hit in
 * the older generation copies the entry back into the recent one. Cheaper per lookup than a strict LRU (no
 * reordering on every hit), keyed by the value alone within a domain (no concatenated key to build and
 * hash), and bounded at twice `size` entries over all domains.
 */
export class ReferenceTokenMemo {
  private recent = new Map<string, Map<string, string>>();
  private older = new Map<string, Map<string, string>>();
  private count = 0;

  constructor(private readonly size: number) {}

  /** The memo of one domain: get and set a value's token. */
  domain(domain: string): {
    get(value: string): string | undefined;
    set(value: string, token: string): void;
  } {
    return {
      get: (value) => {
        const hit = this.recent.get(domain)?.get(value);
        if (hit !== undefined) return hit;
        const old = this.older.get(domain)?.get(value);
        if (old !== undefined) this.put(domain, value, old);
        return old;
      },
      set: (value, token) => this.put(domain, value, token),
    };
  }

  private put(domain: string, value: string, token: string): void {
    if (this.count >= this.size) {
      this.older = this.recent;
      this.recent = new Map();
      this.count = 0;
    }
    let m = this.recent.get(domain);
    if (!m) this.recent.set(domain, (m = new Map<string, string>()));
    if (!m.has(value)) this.count++;
    m.set(value, token);
  }
}
