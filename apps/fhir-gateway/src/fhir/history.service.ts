import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import type { ResourceRepository, StoredVersion } from '../store/resource.repository.js';
import type { ResourceStore } from '../store/resource.store.js';
import { parseDateRange, parseInstant, sqlInstant } from './fhir-date.js';
import { FhirError } from './outcomes.js';
import type { RequestContext } from './request-context.js';
import { ID_PATTERN, type AnyResource } from './resource-json.js';
import { etagOf } from './resource.service.js';

const DEFAULT_COUNT = 50;
const MAX_COUNT = 1000;

/**
 * History at instance, type and system level (https://hl7.org/fhir/R4/http.html#history), newest first.
 * Pages are cut by a cursor on the history sequence, so a page boundary never moves when new versions
 * arrive while a client is paging.
 */
export class HistoryService {
  constructor(
    private readonly store: ResourceStore,
    private readonly baseUrl: string,
  ) {}

  async history(
    ctx: RequestContext,
    target: { type?: string; id?: string },
    query: Record<string, string[]>,
    repo: ResourceRepository = this.store.repo,
  ): Promise<Bundle> {
    if (target.type) ctx.scopes.assertAllows(target.type, 'r');
    else ctx.scopes.assertAllows('*', 'r');
    const count = parseCount(query._count?.[0]);
    const since =
      query._since?.[0] !== undefined ? sqlInstant(parseInstant(query._since[0], '_since')) : undefined;
    const atRange = query._at?.[0] !== undefined ? parseDateRange(query._at[0], '_at') : undefined;
    const at = atRange && { start: sqlInstant(atRange.start), end: sqlInstant(atRange.end) };
    const cursorText = query._cursor?.[0];
    const beforeSeq = cursorText !== undefined ? parseCursor(cursorText) : undefined;
    if (target.id !== undefined && !ID_PATTERN.test(target.id)) {
      throw new FhirError('not-found', `no ${target.type} with that id`);
    }
    const rows = await repo.history({
      resourceType: target.type,
      id: target.id,
      since,
      at,
      beforeSeq,
      limit: count + 1,
    });
    if (target.id !== undefined && rows.length === 0 && beforeSeq === undefined && !since && !at) {
      throw new FhirError('not-found', `no ${target.type} with that id`);
    }
    const page = rows.slice(0, count);
    const selfPath = [target.type, target.id, '_history'].filter(Boolean).join('/');
    const keep = new URLSearchParams();
    for (const [k, vs] of Object.entries(query)) if (k !== '_cursor') for (const v of vs) keep.append(k, v);
    const link: Bundle['link'] = [{ relation: 'self', url: this.url(selfPath, keep, cursorText) }];
    if (rows.length > count && page.length > 0) {
      link.push({ relation: 'next', url: this.url(selfPath, keep, String(page[page.length - 1]!.seq)) });
    }
    return {
      resourceType: 'Bundle',
      type: 'history',
      ...(beforeSeq === undefined && target.id !== undefined
        ? { total: await repo.countHistory({ resourceType: target.type, id: target.id, since }) }
        : {}),
      link,
      entry: page.map((v) => this.entry(v)),
    };
  }

  private url(path: string, keep: URLSearchParams, cursor: string | undefined): string {
    const q = new URLSearchParams(keep);
    if (cursor !== undefined) q.set('_cursor', cursor);
    const qs = q.toString();
    return `${this.baseUrl}/${path}${qs ? `?${qs}` : ''}`;
  }

  private entry(v: StoredVersion): BundleEntry {
    const fullUrl = `${this.baseUrl}/${v.resourceType}/${v.id}`;
    const lastModified = v.lastUpdated;
    if (v.deleted || !v.json) {
      return {
        fullUrl,
        request: { method: 'DELETE', url: `${v.resourceType}/${v.id}` },
        response: { status: '204 No Content', etag: etagOf(v.versionId), lastModified },
      };
    }
    const created = v.versionId === 1;
    return {
      fullUrl,
      resource: JSON.parse(v.json.toString('utf8')) as AnyResource,
      request: created
        ? { method: 'POST', url: v.resourceType }
        : { method: 'PUT', url: `${v.resourceType}/${v.id}` },
      response: { status: created ? '201 Created' : '200 OK', etag: etagOf(v.versionId), lastModified },
    };
  }
}

export function parseCount(value: string | undefined): number {
  if (value === undefined) return DEFAULT_COUNT;
  if (!/^\d{1,6}$/.test(value) || Number(value) < 1) {
    throw new FhirError('bad-request', `_count must be an integer from 1 to ${MAX_COUNT}`, {
      expression: ['_count'],
    });
  }
  return Math.min(Number(value), MAX_COUNT);
}

function parseCursor(value: string): number {
  if (!/^\d{1,15}$/.test(value))
    throw new FhirError('bad-request', '_cursor is not valid', { expression: ['_cursor'] });
  return Number(value);
}
