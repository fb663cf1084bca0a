/** Errors of the crypto lib carry a code, never an HTTP status (STYLE.md rule 3). */
export type CryptoErrorCode =
  'KEY_NOT_FOUND' | 'DECRYPT_FAILED' | 'KEYRING_INVALID' | 'KEY_MATERIAL_INVALID' | 'UNSUPPORTED_FORMAT';

export class CryptoError extends Error {
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CryptoError';
  }
}
