import type { Migration } from '../migrator.js';

/**
 * SMART backend services (https://hl7.org/fhir/smart-app-launch/backend-services.html): registered
 * clients with their public JWKS, the replay store of client-assertion `jti`s, and the server's own token
 * signing keys. None of it is PHI.
 *
 * The server's private keys are never stored in plaintext: `wrapped_private` is the private JWK sealed
 * with AES-256-GCM under a key-encryption key of the KeyProvider (libs/crypto), bound by AAD to its kid.
 */
export const migration0002: Migration = {
  id: '0002-auth',
  sql: `
CREATE TABLE auth_client (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  jwks        jsonb NOT NULL,
  scopes      text NOT NULL,
  enabled     boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A jti is kept until its assertion expires; after that the assertion itself is rejected as expired.
CREATE TABLE auth_assertion_jti (
  client_id   text NOT NULL,
  jti         text NOT NULL,
  expires_at  timestamptz NOT NULL,
  PRIMARY KEY (client_id, jti)
);
CREATE INDEX auth_assertion_jti_expires ON auth_assertion_jti (expires_at);

CREATE TABLE auth_signing_key (
  kid              text PRIMARY KEY,
  alg              text NOT NULL,
  public_jwk       jsonb NOT NULL,
  kek_id           text NOT NULL,
  wrapped_private  bytea NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  retired_at       timestamptz
);
`,
};
