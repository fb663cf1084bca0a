/** Injection tokens for what the composition root builds outside Nest. */
export const APP_CONFIG = Symbol('APP_CONFIG');
export const DATABASE = Symbol('DATABASE');
/** The KeyProvider holding the key-encryption keys (keyring file or FHIRGW_KEK); one per process. */
export const KEY_PROVIDER = Symbol('KEY_PROVIDER');
