import Fastify, { type FastifyInstance } from 'fastify';
import type { Sql } from '../../apps/fhir-gateway/src/database/database.js';

/**
 * The baseline of every gateway scenario: a bare Fastify route on the same database, reading or writing the
 * same JSON by id with no encryption, no auth, no FHIR. The gap between it and the full path is the cost of
 * what the gateway promises.
 */
export async function startBaseline(
  sql: Sql & { transaction?: unknown },
  tx: (fn: (s: Sql) => Promise<void>) => Promise<void>,
  /** More routes (the search suite's plaintext search), registered before the server listens. */
  extraRoutes?: (app: FastifyInstance) => void,
  /** 0: any free port. A cluster worker passes the port all workers share. */
  port = 0,
): Promise<{ app: FastifyInstance; url: string }> {
  await sql.query('CREATE TABLE IF NOT EXISTS bench_plain (id text PRIMARY KEY, content bytea NOT NULL)');
  // The plaintext index a server without encryption would keep for identifier search.
  await sql.query(
    'CREATE TABLE IF NOT EXISTS bench_plain_identifier (value text NOT NULL, id text NOT NULL)',
  );
  await sql.query(
    'CREATE INDEX IF NOT EXISTS bench_plain_identifier_value ON bench_plain_identifier (value)',
  );
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.get<{ Params: { id: string } }>('/plain/Patient/:id', async (req, reply) => {
    const { rows } = await sql.query<{ content: Uint8Array }>(
      'SELECT content FROM bench_plain WHERE id = $1',
      [req.params.id],
    );
    if (!rows[0]) return reply.status(404).send();
    return reply.header('content-type', 'application/json').send(Buffer.from(rows[0].content));
  });
  app.get<{ Querystring: { identifier: string } }>('/plain/Patient', async (req, reply) => {
    const { rows } = await sql.query<{ content: Uint8Array }>(
      'SELECT p.content FROM bench_plain_identifier i JOIN bench_plain p ON p.id = i.id WHERE i.value = $1',
      [req.query.identifier],
    );
    const entry = rows.map((r) => `{"resource":${Buffer.from(r.content).toString('utf8')}}`).join(',');
    return reply
      .header('content-type', 'application/json')
      .send(`{"resourceType":"Bundle","type":"searchset","entry":[${entry}]}`);
  });
  app.post('/plain/Patient', async (req, reply) => {
    await sql.query('INSERT INTO bench_plain (id, content) VALUES (gen_random_uuid()::text, $1)', [
      req.body as Buffer,
    ]);
    return reply.status(201).send();
  });
  app.post('/plain/transaction', async (req, reply) => {
    const bundle = JSON.parse((req.body as Buffer).toString('utf8')) as { entry: { resource: unknown }[] };
    await tx(async (s) => {
      for (const e of bundle.entry) {
        await s.query('INSERT INTO bench_plain (id, content) VALUES (gen_random_uuid()::text, $1)', [
          Buffer.from(JSON.stringify(e.resource)),
        ]);
      }
    });
    return reply.status(200).send();
  });
  extraRoutes?.(app);
  const address = await app.listen({ host: '127.0.0.1', port });
  return { app, url: address };
}
