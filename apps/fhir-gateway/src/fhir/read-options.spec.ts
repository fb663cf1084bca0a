import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestStorage, type TestStorage } from '../../../../test/support/storage.js';
import { testContext } from '../../../../test/support/test-context.js';
import { createFhirEngine } from './fhir-engine.factory.js';
import type { FhirEngine } from './fhir-engine.js';
import type { FhirRequest } from './fhir-types.js';
import { FhirError } from './outcomes.js';

let storage: TestStorage;
let engine: FhirEngine;
const ctx = testContext();
const req = (method: FhirRequest['method'], path: string, opts: Partial<FhirRequest> = {}): FhirRequest => ({
  method,
  path,
  query: {},
  headers: {},
  ...opts,
});
const json = (b: unknown) =>
  (b instanceof Buffer ? JSON.parse(b.toString('utf8')) : b) as Record<string, any>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  storage = await openTestStorage();
  engine = createFhirEngine(storage.store, 'http://h');
});
afterAll(async () => storage.close());

describe('read options', () => {
  it('_summary and _elements subset the resource and tag it SUBSETTED', async () => {
    const body = {
      resourceType: 'Patient',
      text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">x</div>' },
      name: [{ family: 'S' }],
      photo: [{ contentType: 'image/png' }],
      gender: 'male',
    };
    const id = json((await engine.handle(ctx, req('POST', 'Patient', { body }))).body).id as string;
    const summary = json(
      (await engine.handle(ctx, req('GET', `Patient/${id}`, { query: { _summary: ['true'] } }))).body,
    );
    expect(summary.name).toBeDefined();
    expect(summary.photo).toBeUndefined();
    expect(summary.text).toBeUndefined();
    expect(summary.meta.tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
    const elements = json(
      (await engine.handle(ctx, req('GET', `Patient/${id}`, { query: { _elements: ['gender'] } }))).body,
    );
    expect(Object.keys(elements).sort()).toEqual(['gender', 'id', 'meta', 'resourceType']);
    const data = json(
      (await engine.handle(ctx, req('GET', `Patient/${id}`, { query: { _summary: ['data'] } }))).body,
    );
    expect(data.text).toBeUndefined();
    expect(data.photo).toBeDefined();
    await expect(
      engine.handle(ctx, req('GET', `Patient/${id}`, { query: { _summary: ['nope'] } })),
    ).rejects.toMatchObject({ status: 400 });
  });

  it('_summary and _elements subset the matches of a search; includes only under _summary', async () => {
    const pat = {
      resourceType: 'Patient',
      text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">y</div>' },
      name: [{ family: 'Subsetsearch' }],
      photo: [{ contentType: 'image/png' }],
      gender: 'female',
    };
    const pid = json((await engine.handle(ctx, req('POST', 'Patient', { body: pat }))).body).id as string;
    const obs = {
      resourceType: 'Observation',
      status: 'final',
      code: { text: 'weight' },
      subject: { reference: `Patient/${pid}` },
      note: [{ text: 'no summary element' }],
    };
    await engine.handle(ctx, req('POST', 'Observation', { body: obs }));
    const search = async (query: Record<string, string[]>) =>
      (await engine.handle(ctx, req('GET', 'Patient', { query: { family: ['subsetsearch'], ...query } })))
        .body as { entry: { resource: Record<string, any>; search: { mode: string } }[] };
    const rev = { _revinclude: ['Observation:subject'] };
    const elements = await search({ _elements: ['gender'], ...rev });
    const match = elements.entry.find((e) => e.search.mode === 'match')!.resource;
    expect(Object.keys(match).sort()).toEqual(['gender', 'id', 'meta', 'resourceType']);
    expect(match.meta.tag).toContainEqual(expect.objectContaining({ code: 'SUBSETTED' }));
    const included = elements.entry.find((e) => e.search.mode === 'include')!.resource;
    expect(included.note).toBeDefined();
    const summary = await search({ _summary: ['true'], ...rev });
    expect(summary.entry.find((e) => e.search.mode === 'match')!.resource.photo).toBeUndefined();
    const inc = summary.entry.find((e) => e.search.mode === 'include')!.resource;
    expect(inc.note).toBeUndefined();
    expect(inc.status).toBe('final');
    const whole = await search({});
    expect(whole.entry[0]!.resource.photo).toBeDefined();
    await expect(search({ _summary: ['nope'] })).rejects.toMatchObject({ status: 400 });
  });

  it('answers If-None-Match with 304 and honours Prefer', async () => {
    const body = { resourceType: 'Organization', name: 'O' };
    const minimal = await engine.handle(
      ctx,
      req('POST', 'Organization', { body, headers: { prefer: 'return=minimal' } }),
    );
    expect(minimal.status).toBe(201);
    expect(minimal.body).toBeUndefined();
    const id = minimal.headers.Location!.split('/')[5]!;
    const outcome = await engine.handle(
      ctx,
      req('PUT', `Organization/${id}`, {
        body: { ...body, id },
        headers: { prefer: 'return=OperationOutcome' },
      }),
    );
    expect(json(outcome.body).resourceType).toBe('OperationOutcome');
    expect(
      (await engine.handle(ctx, req('GET', `Organization/${id}`, { headers: { ifNoneMatch: 'W/"2"' } })))
        .status,
    ).toBe(304);
    expect(
      (await engine.handle(ctx, req('GET', `Organization/${id}`, { headers: { ifNoneMatch: 'W/"1"' } })))
        .status,
    ).toBe(200);
  });
});

describe('history', () => {
  it('pages with stable cursors, filters by _since and _at, at every level', async () => {
    const body = { resourceType: 'Device', status: 'active' as string };
    const id = json((await engine.handle(ctx, req('POST', 'Device', { body }))).body).id as string;
    const stamps: string[] = [];
    for (let v = 2; v <= 5; v++) {
      await sleep(5);
      const r = await engine.handle(
        ctx,
        req('PUT', `Device/${id}`, { body: { ...body, id, status: v % 2 ? 'active' : 'inactive' } }),
      );
      stamps.push(json(r.body).meta.lastUpdated as string);
    }
    const page1 = json(
      (await engine.handle(ctx, req('GET', `Device/${id}/_history`, { query: { _count: ['2'] } }))).body,
    );
    expect(page1.total).toBe(5);
    expect(page1.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['5', '4']);
    const next = new URL(page1.link.find((l: any) => l.relation === 'next').url);
    // A write between pages does not shift the next page.
    await engine.handle(ctx, req('PUT', `Device/${id}`, { body: { ...body, id } }));
    const page2 = json(
      (
        await engine.handle(
          ctx,
          req('GET', `Device/${id}/_history`, {
            query: Object.fromEntries([...next.searchParams].map(([k, v]) => [k, [v]])),
          }),
        )
      ).body,
    );
    expect(page2.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['3', '2']);

    const since = json(
      (await engine.handle(ctx, req('GET', `Device/${id}/_history`, { query: { _since: [stamps[3]!] } })))
        .body,
    );
    expect(since.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['6', '5']);
    // _at: the version current at the instant version 3 was written, is version 3.
    const at = json(
      (await engine.handle(ctx, req('GET', `Device/${id}/_history`, { query: { _at: [stamps[1]!] } }))).body,
    );
    expect(at.entry.map((e: any) => e.resource.meta.versionId)).toEqual(['3']);

    const typeLevel = json((await engine.handle(ctx, req('GET', 'Device/_history'))).body);
    expect(typeLevel.entry.every((e: any) => e.resource.resourceType === 'Device')).toBe(true);
    const system = json(
      (await engine.handle(ctx, req('GET', '_history', { query: { _count: ['3'] } }))).body,
    );
    expect(system.entry).toHaveLength(3);
    await expect(
      engine.handle(ctx, req('GET', '_history', { query: { _since: ['yesterday'] } })),
    ).rejects.toBeInstanceOf(FhirError);
  });
});
