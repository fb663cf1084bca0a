export * from './crypto-error.js';
export * from './key-provider.js';
export { seal, open } from './aead.js';
export { LocalKeyringProvider } from './local-keyring.provider.js';
export { EnvKeyProvider } from './env-key.provider.js';
export * from './data-key.store.js';
export * from './data-key.service.js';
export { BlindIndexer, normalizeSearchString } from './blind-index.js';
