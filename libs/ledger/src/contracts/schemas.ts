import { z } from 'zod';

/**
 * Argument shapes of the contracts. Ids are opaque random ids or keyed pseudonyms (no PHI
 * on-chain, ARCHITECTURE.md): the pattern below rules out spaces and most free text.
 */
export const opaqueId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:\-/]+$/, 'must be an opaque id');

const isoDateTime = z.iso.datetime({ offset: true });
const period = z.strictObject({ start: isoDateTime.optional(), end: isoDateTime.optional() });
const code = z.string().min(1).max(256);

/** FHIR R4 Consent.provision (http://hl7.org/fhir/R4/consent-definitions.html#Consent.provision). */
export interface Provision {
  type: 'permit' | 'deny';
  period?: { start?: string; end?: string };
  actor?: { role: string; reference: string }[];
  action?: string[];
  securityLabel?: string[];
  purpose?: string[];
  class?: string[];
  code?: string[];
  dataPeriod?: { start?: string; end?: string };
  provision?: Provision[];
}

export const provisionSchema: z.ZodType<Provision> = z.lazy(() =>
  z.strictObject({
    type: z.enum(['permit', 'deny']),
    period: period.optional(),
    actor: z
      .array(z.strictObject({ role: code, reference: opaqueId }))
      .max(64)
      .optional(),
    action: z.array(code).max(16).optional(),
    securityLabel: z.array(code).max(64).optional(),
    purpose: z.array(code).max(32).optional(),
    class: z.array(code).max(128).optional(),
    code: z.array(code).max(128).optional(),
    dataPeriod: period.optional(),
    provision: z.array(provisionSchema).max(32).optional(),
  }),
);

export const grantInputSchema = z.strictObject({
  grantId: opaqueId,
  patientId: opaqueId,
  /** 1 for a new grant, previous version + 1 for a change: a signed grant cannot be replayed. */
  version: z.number().int().min(1),
  /** FHIR Consent.scope; patient-privacy is the only one the gateway enforces. */
  scope: z.literal('patient-privacy').default('patient-privacy'),
  policyRule: code.optional(),
  provision: provisionSchema,
});
export type GrantInput = z.infer<typeof grantInputSchema>;

/** Proof that the patient (or a delegate) wants this change. */
export const evidenceSchema = z.strictObject({
  /** Identity id of the signer: the patient or a delegate. Default: the patient. */
  signer: opaqueId.optional(),
  /** Base64 signature over the canonical JSON of the operation (see consent.contract.ts). */
  signature: z.string().max(2048).optional(),
});
export type Evidence = z.infer<typeof evidenceSchema>;

export const identityKinds = ['client', 'practitioner', 'device', 'gateway', 'patient'] as const;
export type IdentityKind = (typeof identityKinds)[number];

export const identityInputSchema = z.strictObject({
  id: opaqueId,
  kind: z.enum(identityKinds),
  /** MSP id of the organisation that vouches for this identity. */
  org: z.string().min(1).max(64),
  role: code,
  /** Hex SHA-256 of the DER SubjectPublicKeyInfo. */
  keyFingerprint: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** PEM public key (Ed25519 or ECDSA P-256) for signatures verified on-chain. */
  publicKeyPem: z.string().max(4096).optional(),
  /** Fabric principal (`<mspId>::<x509 id>`) that acts as this identity when it submits itself. */
  fabricId: z.string().max(1024).optional(),
});
export type IdentityInput = z.infer<typeof identityInputSchema>;

export const treeHeadSchema = z.strictObject({
  logId: opaqueId,
  treeSize: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  /** RFC 6962 Merkle tree hash, lowercase hex SHA-256. */
  rootHash: z.string().regex(/^[0-9a-f]{64}$/),
  /** When the signer produced the head (ISO-8601). */
  timestamp: isoDateTime,
  /** Identity id of the registered gateway whose key signed the head. */
  signer: opaqueId,
  signature: z.string().min(1).max(2048),
});
export type TreeHeadInput = z.infer<typeof treeHeadSchema>;

/** Runs a schema, reporting the first issue as one short line. */
export function check<T>(schema: z.ZodType<T>): (v: unknown) => T {
  return (v) => {
    const r = schema.safeParse(v);
    if (r.success) return r.data;
    const issue = r.error.issues[0];
    throw new Error(issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid');
  };
}
