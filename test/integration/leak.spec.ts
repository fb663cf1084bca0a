import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.factory.js';
import type { FhirEngine } from '../../apps/fhir-gateway/src/fhir/fhir-engine.js';
import { FhirError } from '../../apps/fhir-gateway/src/fhir/outcomes.js';
import { generatePatients } from '../support/patient-generator.js';
import { openTestStorage, type TestStorage } from '../support/storage.js';
import { testContext } from '../support/test-context.js';

/**
 * Promise 1 (ARCHITECTURE.md): no PHI in plaintext at rest. Loads realistic patients through the normal
 * write path, dumps the whole database (pg_dump on a real server; every table as text on PGlite), and
 * looks for each PHI value. Then shows that tampering and row swapping are detected on read.
 */
let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
const patients = generatePatients(25, 7);
const ids: { patient: string; observation: string }[] = [];

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://127.0.0.1:8080');
  for (const p of patients) {
    const created = await engine.handle(ctx, {
      method: 'POST',
      path: 'Patient',
      query: {},
      headers: {},
      body: p.patient,
    });
    const patientId = JSON.parse((created.body as Buffer).toString()).id as string;
    const obs = await engine.handle(ctx, {
      method: 'POST',
      path: 'Observation',
      query: {},
      headers: {},
      body: { ...p.observations[0], subject: { reference: `Patient/${patientId}` } },
    });
    ids.push({ patient: patientId, observation: JSON.parse((obs.body as Buffer).toString()).id as string });
  }
}, 120_000);
afterAll(async () => storage.close());

function pgDumpBinary(): string {
  for (const dir of [
    '/usr/lib/postgresql/15/bin',
    '/usr/lib/postgresql/16/bin',
    '/usr/lib/postgresql/17/bin',
  ]) {
    if (existsSync(`${dir}/pg_dump`)) return `${dir}/pg_dump`;
  }
  return 'pg_dump';
}

async function dumpDatabase(): Promise<string> {
  if (storage.databaseUrl) {
    return execFileSync(pgDumpBinary(), ['--no-owner', storage.databaseUrl], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
  }
  // PGlite has no pg_dump binary here: read every user table, bytea rendered as escaped text too.
  const { rows: tables } = await storage.db.query<{ t: string }>(
    `SELECT quote_ident(table_name) AS t FROM information_schema.tables WHERE table_schema = 'public'`,
  );
  let out = '';
  for (const { t } of tables) {
    const { rows } = await storage.db.query<{ r: string }>(`SELECT (x.*)::text AS r FROM ${t} x`);
    out += rows.map((r) => r.r).join('\n');
  }
  return out;
}

describe('encryption at rest', () => {
  it('the stored data round-trips through the API', async () => {
    const res = await engine.handle(ctx, {
      method: 'GET',
      path: `Patient/${ids[3]!.patient}`,
      query: {},
      headers: {},
    });
    const body = JSON.parse((res.body as Buffer).toString());
    expect(body.name[0].family).toBe(
      patients[3]!.patient.name && (patients[3]!.patient.name as { family: string }[])[0]!.family,
    );
  });

  it('a full database dump contains none of the PHI values', async () => {
    const dump = await dumpDatabase();
    expect(dump.length).toBeGreaterThan(10_000);
    // The dump really holds the rows: every resource id is there in plaintext (ids are not PHI).
    for (const { patient } of ids) expect(dump).toContain(patient);
    const leaked = patients.flatMap((p) => p.phi).filter((v) => dump.includes(v));
    expect(leaked).toEqual([]);
    // Also as they would appear inside JSON, and the lower-cased names.
    const lower = dump.toLowerCase();
    const leakedLower = patients
      .flatMap((p) => p.phi.slice(0, 2))
      .filter((v) => lower.includes(v.toLowerCase()));
    expect(leakedLower).toEqual([]);
  });

  it('detects a tampered ciphertext on read', async () => {
    const id = ids[0]!.patient;
    await storage.db.query(
      `UPDATE resource SET content = overlay(content placing '\\x00'::bytea from 40 for 1) WHERE resource_type = 'Patient' AND id = $1`,
      [id],
    );
    const err = await engine
      .handle(ctx, { method: 'GET', path: `Patient/${id}`, query: {}, headers: {} })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FhirError);
    expect((err as FhirError).status).toBe(500);
    expect((err as FhirError).message).toMatch(/integrity/);
  });

  it('detects a ciphertext swapped between rows, even under the same patient key', async () => {
    // Two versions of one patient share a data key; only the AAD (type/id/version) tells them apart.
    const id = ids[1]!.patient;
    const current = JSON.parse(
      (
        (await engine.handle(ctx, { method: 'GET', path: `Patient/${id}`, query: {}, headers: {} }))
          .body as Buffer
      ).toString(),
    );
    await engine.handle(ctx, {
      method: 'PUT',
      path: `Patient/${id}`,
      query: {},
      headers: {},
      body: { ...current, active: true },
    });
    await storage.db.query(
      `UPDATE resource r SET content = h.content FROM resource_history h
        WHERE r.resource_type = 'Patient' AND r.id = $1 AND h.resource_type = r.resource_type AND h.id = r.id AND h.version_id = 1`,
      [id],
    );
    const err = await engine
      .handle(ctx, { method: 'GET', path: `Patient/${id}`, query: {}, headers: {} })
      .catch((e: unknown) => e);
    expect((err as FhirError).status).toBe(500);

    // And across patients: patient 2's row given patient 3's ciphertext and key id.
    const [a, b] = [ids[2]!.patient, ids[4]!.patient];
    await storage.db.query(
      `UPDATE resource r SET content = s.content, dek_id = s.dek_id FROM resource s
        WHERE r.resource_type = 'Patient' AND r.id = $1 AND s.resource_type = 'Patient' AND s.id = $2`,
      [a, b],
    );
    const err2 = await engine
      .handle(ctx, { method: 'GET', path: `Patient/${a}`, query: {}, headers: {} })
      .catch((e: unknown) => e);
    expect((err2 as FhirError).status).toBe(500);
  });
});
