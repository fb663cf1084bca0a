import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('defaults to the embedded database and a local keyring on 127.0.0.1:8080', () => {
    const c = loadConfig({});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.baseUrl).toBe('http://127.0.0.1:8080');
    expect(c.database.kind).toBe('pglite');
    expect(c.keys.kind).toBe('keyring');
  });

  it('switches to Postgres and environment keys', () => {
    const c = loadConfig({
      DATABASE_URL: 'postgres://u@h/db',
      FHIRGW_KEK: 'k1:abc',
      BASE_URL: 'https://fhir.example.org/',
    });
    expect(c.database).toEqual({ kind: 'postgres', url: 'postgres://u@h/db' });
    expect(c.keys.kind).toBe('env');
    expect(c.baseUrl).toBe('https://fhir.example.org');
  });

  it('serves in one process unless WORKERS asks for more, and only Postgres can have more', () => {
    const pg = { DATABASE_URL: 'postgres://u@h/db' };
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ ...pg, WORKERS: '3' }).workers).toBe(3);
    expect(loadConfig({ ...pg, WORKERS: 'auto' }).workers).toBe(availableParallelism());
    // PGlite lives inside one process: "auto" means that one, an explicit number is refused.
    expect(loadConfig({ WORKERS: 'auto' }).workers).toBe(1);
    expect(() => loadConfig({ WORKERS: '2' })).toThrow(/WORKERS: .*DATABASE_URL/);
    for (const bad of ['0', 'many', '1.5'])
      expect(() => loadConfig({ ...pg, WORKERS: bad })).toThrow(ConfigError);
  });

  it('lists every bad setting at once, without echoing values', () => {
    try {
      loadConfig({
        PORT: 'eighty',
        TOKEN_TTL_SECONDS: '3600',
        LOG_LEVEL: 'loud',
        BASE_URL: 'not a url secret-ish',
      });
      expect.fail('should throw');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      expect((err as ConfigError).problems).toHaveLength(4);
      for (const name of ['PORT', 'TOKEN_TTL_SECONDS', 'LOG_LEVEL', 'BASE_URL'])
        expect(problems).toContain(name);
      expect(problems).not.toContain('secret-ish');
    }
  });
});
