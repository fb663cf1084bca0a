import { BlindIndexer, type DataKeyService } from '#crypto';
import type { AnyResource } from '../fhir/resource-json.js';
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

  constructor(private readonly keys: DataKeyService) {}

  async ready(): Promise<void> {
    this.loading ??= this.keys
      .keyForScope(SEARCH_KEY_SCOPE)
      .then((k) => (this.indexer = new BlindIndexer(k.key)));
    await this.loading;
  }

  tokensOf(resource: AnyResource): HashedToken[] {
    return extractTokens(resource).map((t) => ({
      param: t.param,
      token: this.hash(resource.resourceType, t.param, t.value),
    }));
  }

  hash(resourceType: string, param: string, value: string): string {
    if (!this.indexer) throw new Error('SearchIndex used before ready()');
    return this.indexer.token(`${resourceType}.${param}`, value).toString('hex');
  }
}
