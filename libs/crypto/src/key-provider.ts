/**
 * Port for key-encryption keys (KEKs). A KEK never leaves its provider: callers hand it a data key to
 * wrap or a wrapped key to unwrap. Embedded default: a local keyring file. Production: keys from the
 * environment today, PKCS#11 (SoftHSM2 / a real HSM) later, behind the same interface.
 */
export interface WrappedKey {
  /** Which KEK version wrapped this key, e.g. "local-2". Stored beside the wrapped bytes. */
  kekId: string;
  wrapped: Buffer;
}

export interface KeyProvider {
  /** The KEK version new data keys are wrapped with. Older versions stay available for unwrapping. */
  currentKekId(): string;
  /** context is bound as AAD, so a wrapped key cannot be moved to another record. */
  wrap(key: Buffer, context: string): Promise<WrappedKey>;
  unwrap(wrapped: WrappedKey, context: string): Promise<Buffer>;
}
