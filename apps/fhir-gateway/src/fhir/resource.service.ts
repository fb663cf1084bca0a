import { randomUUID } from 'node:crypto';
import type { ResourceRepository, StoredVersion } from '../store/resource.repository.js';
import type { ResourceStore } from '../store/resource.store.js';
import type { R4Definitions } from './definitions.js';
import { FhirError } from './outcomes.js';
import { applyPatchDocument, parsePatch } from './patch.js';
import type { RequestContext } from './request-context.js';
import {
  collectReferences,
  ID_PATTERN,
  keyScopeFor,
  patientCompartments,
  withServerMeta,
  type AnyResource,
} from './resource-json.js';
import { assertValid } from './validator.js';
import type { SearchIndex } from '../search/search-index.js';

export interface WriteResult {
  /** 201 when a resource (or a new life after deletion) was created, else 200. */
  status: 200 | 201;
  version: StoredVersion;
  resource?: AnyResource;
}

/**
 * The FHIR RESTful interactions on single resources (https://hl7.org/fhir/R4/http.html), free of HTTP.
 * Write methods take an optional repository bound to an open transaction, so a transaction Bundle runs
 * them all in one database transaction.
 */
export class ResourceService {
  constructor(
    private readonly defs: R4Definitions,
    private readonly store: ResourceStore,
    private readonly search: SearchIndex,
  ) {}

  assertType(type: string): void {
    if (!this.defs.resourceTypes.has(type)) {
      throw new FhirError('not-found', 'unknown resource type');
    }
  }

  async read(
    ctx: RequestContext,
    type: string,
    id: string,
    repo?: ResourceRepository,
  ): Promise<StoredVersion> {
    this.assertType(type);
    ctx.scopes.assertAllows(type, 'r');
    const v = ID_PATTERN.test(id) ? await (repo ?? this.store.repo).readCurrent(type, id) : undefined;
    if (!v) throw new FhirError('not-found', `no ${type} with that id`);
    if (v.deleted) throw gone(v);
    return v;
  }

  async vread(
    ctx: RequestContext,
    type: string,
    id: string,
    vid: string,
    repo?: ResourceRepository,
  ): Promise<StoredVersion> {
    this.assertType(type);
    ctx.scopes.assertAllows(type, 'r');
    const n = /^[1-9][0-9]{0,15}$/.test(vid) ? Number(vid) : undefined;
    const v = n && ID_PATTERN.test(id) ? await (repo ?? this.store.repo).readVersion(type, id, n) : undefined;
    if (!v) throw new FhirError('not-found', `no such version of the ${type}`);
    if (v.deleted) throw gone(v);
    return v;
  }

  async create(
    ctx: RequestContext,
    type: string,
    body: unknown,
    repo?: ResourceRepository,
    id: string = randomUUID(),
  ) {
    this.assertType(type);
    ctx.scopes.assertAllows(type, 'c');
    const resource = this.validBody(type, body, id);
    const compartments = this.compartmentsOf(resource, id);
    return this.transact(repo, [keyScopeFor(compartments)], (r) => this.createIn(r, type, id, resource));
  }

  /**
   * A create on an open transaction, of a body validBody accepted. A client-supplied id is ignored: the
   * server assigns `id` (R4 http.html#create).
   */
  createIn(r: ResourceRepository, type: string, id: string, resource: AnyResource): Promise<WriteResult> {
    return this.writeNew(r, type, id, resource, this.compartmentsOf(resource, id), 1, 201);
  }

  async update(
    ctx: RequestContext,
    type: string,
    id: string,
    body: unknown,
    ifMatch: string | undefined,
    repo?: ResourceRepository,
  ): Promise<WriteResult> {
    this.assertType(type);
    const resource = this.checkBody(type, body);
    if (resource.id === undefined)
      throw new FhirError('bad-request', 'the resource has no id', { expression: [`${type}.id`] });
    if (resource.id !== id) {
      throw new FhirError('bad-request', 'the id in the body differs from the id in the URL', {
        expression: [`${type}.id`],
      });
    }
    if (!ID_PATTERN.test(id))
      throw new FhirError('bad-request', 'invalid id', { expression: [`${type}.id`] });
    assertValid(this.defs, resource);
    const compartments = this.compartmentsOf(resource, id);
    return this.transact(repo, [keyScopeFor(compartments)], (r) =>
      this.updateIn(ctx, r, type, id, resource, ifMatch),
    );
  }

  /** An update (or update-as-create) of `id` on an open transaction, of a body already checked and valid. */
  async updateIn(
    ctx: RequestContext,
    r: ResourceRepository,
    type: string,
    id: string,
    resource: AnyResource,
    ifMatch: string | undefined,
  ): Promise<WriteResult> {
    const current = await r.lockCurrent(type, id);
    // update-as-create (R4 http.html#upsert) needs the create right, a plain update the update right.
    ctx.scopes.assertAllows(type, current && !current.deleted ? 'u' : 'c');
    checkIfMatch(ifMatch, current);
    const next = (current?.versionId ?? 0) + 1;
    const status = current && !current.deleted ? 200 : 201;
    return this.writeNew(r, type, id, resource, this.compartmentsOf(resource, id), next, status);
  }

  async patch(
    ctx: RequestContext,
    type: string,
    id: string,
    body: unknown,
    contentType: string | undefined,
    ifMatch: string | undefined,
    repo?: ResourceRepository,
  ): Promise<WriteResult> {
    this.assertType(type);
    ctx.scopes.assertAllows(type, 'u');
    const patch = parsePatch(body, contentType);
    return this.transact(repo, [], (r) => this.patchIn(r, type, id, patch, ifMatch));
  }

  /** A patch of `id` on an open transaction; the caller checked the update right and parsed the patch. */
  async patchIn(
    r: ResourceRepository,
    type: string,
    id: string,
    patch: ReturnType<typeof parsePatch>,
    ifMatch: string | undefined,
  ): Promise<WriteResult> {
    const current = await r.lockCurrent(type, id);
    if (!current) throw new FhirError('not-found', `no ${type} with that id`);
    checkIfMatch(ifMatch, current);
    const stored = await r.readCurrent(type, id);
    if (!stored?.json || stored.deleted) {
      throw gone(stored ?? { ...current, resourceType: type, id, lastUpdated: '' });
    }
    const patched = applyPatchDocument(JSON.parse(stored.json.toString('utf8')) as AnyResource, patch);
    if (patched.resourceType !== type || patched.id !== id) {
      throw new FhirError('unprocessable', 'a patch may not change resourceType or id');
    }
    assertValid(this.defs, patched);
    const compartments = this.compartmentsOf(patched, id);
    return this.writeNew(r, type, id, patched, compartments, current.versionId + 1, 200);
  }

  async delete(
    ctx: RequestContext,
    type: string,
    id: string,
    ifMatch: string | undefined,
    repo?: ResourceRepository,
  ): Promise<StoredVersion | undefined> {
    this.assertType(type);
    ctx.scopes.assertAllows(type, 'd');
    return this.transact(repo, [], (r) => this.deleteIn(r, type, id, ifMatch));
  }

  /** A delete of `id` on an open transaction; the caller checked the delete right. */
  async deleteIn(
    r: ResourceRepository,
    type: string,
    id: string,
    ifMatch: string | undefined,
  ): Promise<StoredVersion | undefined> {
    const current = ID_PATTERN.test(id) ? await r.lockCurrent(type, id) : undefined;
    checkIfMatch(ifMatch, current);
    // Deleting what does not exist, or is already deleted, succeeds without a new version (R4 http.html#delete).
    if (!current || current.deleted) return undefined;
    const version: StoredVersion = {
      resourceType: type,
      id,
      versionId: current.versionId + 1,
      lastUpdated: new Date().toISOString(),
      deleted: true,
    };
    await r.writeVersion({
      ...version,
      keyScope: 'shared',
      references: [],
      compartments: [],
      searchTokens: [],
    });
    return version;
  }

  /** The body of a create or update, checked and validated as if stored under `id`. */
  validBody(type: string, body: unknown, id: string): AnyResource {
    const resource = this.checkBody(type, body);
    assertValid(this.defs, { ...resource, id });
    return resource;
  }

  private checkBody(type: string, body: unknown): AnyResource {
    if (body === undefined) throw new FhirError('bad-request', 'the request has no body');
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw new FhirError('bad-request', 'the body must be a FHIR resource (a JSON object)');
    }
    const rt = (body as { resourceType?: unknown }).resourceType;
    if (rt !== type) {
      throw new FhirError('bad-request', `resourceType in the body must be ${type}`, {
        expression: ['resourceType'],
      });
    }
    return body as AnyResource;
  }

  private async writeNew(
    repo: ResourceRepository,
    type: string,
    id: string,
    resource: AnyResource,
    compartments: string[],
    versionId: number,
    status: 200 | 201,
  ): Promise<WriteResult> {
    const lastUpdated = new Date().toISOString();
    const stored = withServerMeta(resource, id, versionId, lastUpdated);
    const json = Buffer.from(JSON.stringify(stored), 'utf8');
    await repo.writeVersion({
      resourceType: type,
      id,
      versionId,
      lastUpdated,
      deleted: false,
      json,
      keyScope: keyScopeFor(compartments),
      references: collectReferences(stored),
      compartments,
      searchTokens: this.search.tokensOf(stored, compartments),
    });
    return {
      status,
      version: { resourceType: type, id, versionId, lastUpdated, deleted: false, json },
      resource: stored,
    };
  }

  /** Patient compartments (hence the data key) of a resource; meta does not affect them. */
  compartmentsOf(resource: AnyResource, id: string): string[] {
    return patientCompartments(this.defs, resource, id);
  }

  /**
   * Runs fn in the caller's transaction, or in a new one whose data keys (keyScopes) are made ready
   * beforehand (a key cannot be created inside a transaction; see ResourceStore.write). A scope the write
   * discovers only inside is created on demand and fn runs again, so fn must be safe to repeat.
   */
  async transact<T>(
    repo: ResourceRepository | undefined,
    keyScopes: readonly string[],
    fn: (r: ResourceRepository) => Promise<T>,
  ): Promise<T> {
    if (repo) return fn(repo);
    await this.search.ready();
    return this.store.write(fn, keyScopes);
  }
}

export function etagOf(versionId: number): string {
  return `W/"${versionId}"`;
}

/** R4 http.html#concurrency: If-Match carries a weak ETag of the version the client last saw. */
function checkIfMatch(
  ifMatch: string | undefined,
  current: { versionId: number; deleted: boolean } | undefined,
): void {
  if (ifMatch === undefined) return;
  const m = /^(?:W\/)?"?([^"]+)"?$/.exec(ifMatch.trim());
  if (!current || !m || m[1] !== String(current.versionId) || current.deleted) {
    throw new FhirError('precondition-failed', 'If-Match does not match the current version');
  }
}

function gone(v: Pick<StoredVersion, 'resourceType' | 'id' | 'versionId' | 'lastUpdated'>): FhirError {
  return new FhirError('gone', `the ${v.resourceType} has been deleted`, {
    headers: {
      ETag: etagOf(v.versionId),
      ...(v.lastUpdated ? { 'Last-Modified': new Date(v.lastUpdated).toUTCString() } : {}),
    },
  });
}
