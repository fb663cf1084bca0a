import type { Migration } from '../migrator.js';

/**
 * Storage for FHIR resources. Plaintext columns hold only non-PHI metadata (ARCHITECTURE.md, "Storage and
 * encryption"): type, id, version, lastUpdated, deleted flag, key id, and reference targets as ids. The
 * resource itself is in `content`, AES-256-GCM ciphertext of the exact JSON bytes served to clients.
 */
export const migration0001: Migration = {
  id: '0001-resources',
  sql: `
CREATE TABLE data_key (
  id          uuid PRIMARY KEY,
  scope       text NOT NULL,
  kek_id      text NOT NULL,
  wrapped     bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  retired_at  timestamptz
);
-- At most one active key per scope; concurrent creators race on this index.
CREATE UNIQUE INDEX data_key_active_scope ON data_key (scope) WHERE retired_at IS NULL;

CREATE TABLE resource (
  resource_type text NOT NULL,
  id            text NOT NULL,
  version_id    bigint NOT NULL,
  last_updated  timestamptz NOT NULL,
  deleted       boolean NOT NULL DEFAULT false,
  dek_id        uuid REFERENCES data_key (id),
  content       bytea,
  PRIMARY KEY (resource_type, id)
);

CREATE TABLE resource_history (
  seq           bigserial UNIQUE,
  resource_type text NOT NULL,
  id            text NOT NULL,
  version_id    bigint NOT NULL,
  last_updated  timestamptz NOT NULL,
  deleted       boolean NOT NULL DEFAULT false,
  dek_id        uuid REFERENCES data_key (id),
  content       bytea,
  PRIMARY KEY (resource_type, id, version_id)
);
CREATE INDEX resource_history_type_updated ON resource_history (resource_type, last_updated, seq);
CREATE INDEX resource_history_updated ON resource_history (last_updated, seq);

-- Reference targets (ids only) and Patient-compartment membership, for search, _revinclude and erasure.
CREATE TABLE resource_reference (
  resource_type text NOT NULL,
  id            text NOT NULL,
  target_type   text NOT NULL,
  target_id     text NOT NULL,
  PRIMARY KEY (resource_type, id, target_type, target_id)
);
CREATE INDEX resource_reference_target ON resource_reference (target_type, target_id);

CREATE TABLE resource_compartment (
  resource_type text NOT NULL,
  id            text NOT NULL,
  patient_id    text NOT NULL,
  PRIMARY KEY (resource_type, id, patient_id)
);
CREATE INDEX resource_compartment_patient ON resource_compartment (patient_id);
`,
};
