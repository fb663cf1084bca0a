import type { Context } from 'fabric-contract-api';
import { canonicalJson } from '../canonical-json.js';
import { reject } from './contract-error.js';

/**
 * Helpers over the Fabric transaction context. Everything a contract decides comes from here:
 * the caller's certificate identity, the transaction timestamp chosen by the client and signed in
 * the proposal, and the world state. No wall clock and no randomness, so every endorsing peer
 * computes the same write set (Fabric docs, "Chaincode for developers": determinism).
 */

/** Stable caller principal: MSP id plus the X.509 subject/issuer id Fabric derives from the certificate. */
export function callerId(ctx: Context): string {
  return `${ctx.clientIdentity.getMSPID()}::${ctx.clientIdentity.getID()}`;
}

export function callerMsp(ctx: Context): string {
  return ctx.clientIdentity.getMSPID();
}

/** Transaction timestamp as ISO-8601 (millisecond precision). */
export function txTime(ctx: Context): string {
  const ts = ctx.stub.getTxTimestamp() as { seconds: { toString(): string } | number; nanos: number };
  const ms = Number(ts.seconds.toString()) * 1000 + Math.floor(ts.nanos / 1_000_000);
  return new Date(ms).toISOString();
}

export async function getJson<T>(ctx: Context, key: string): Promise<T | undefined> {
  const bytes = await ctx.stub.getState(key);
  if (!bytes || bytes.length === 0) return undefined;
  return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
}

export async function putJson(ctx: Context, key: string, value: unknown): Promise<void> {
  await ctx.stub.putState(key, Buffer.from(canonicalJson(value), 'utf8'));
}

/** Fabric keeps one chaincode event per transaction; the payload is canonical JSON. */
export function emit(ctx: Context, name: string, payload: unknown): void {
  ctx.stub.setEvent(name, Buffer.from(canonicalJson(payload), 'utf8'));
}

export async function listByPartialKey(
  ctx: Context,
  objectType: string,
  attrs: string[],
): Promise<{ key: string; value: Uint8Array }[]> {
  const it = await ctx.stub.getStateByPartialCompositeKey(objectType, attrs);
  const out: { key: string; value: Uint8Array }[] = [];
  try {
    let r = await it.next();
    while (!r.done) {
      out.push({ key: r.value.key, value: r.value.value });
      r = await it.next();
    }
  } finally {
    await it.close();
  }
  return out;
}

export interface HistoryEntry<T> {
  txId: string;
  timestamp: string;
  isDelete: boolean;
  value: T | null;
}

export async function keyHistory<T>(ctx: Context, key: string): Promise<HistoryEntry<T>[]> {
  const it = await ctx.stub.getHistoryForKey(key);
  const out: HistoryEntry<T>[] = [];
  try {
    let r = await it.next();
    while (!r.done) {
      const m = r.value;
      const ts = m.timestamp as { seconds: { toString(): string } | number; nanos: number };
      const ms = Number(ts.seconds.toString()) * 1000 + Math.floor(ts.nanos / 1_000_000);
      out.push({
        txId: m.txId,
        timestamp: new Date(ms).toISOString(),
        isDelete: m.isDelete,
        value:
          m.isDelete || m.value.length === 0
            ? null
            : (JSON.parse(Buffer.from(m.value).toString('utf8')) as T),
      });
      r = await it.next();
    }
  } finally {
    await it.close();
  }
  return out;
}

/** Parses a JSON argument and validates it, turning any failure into an INVALID_INPUT rejection. */
export function parseArg<T>(raw: string, what: string, parse: (v: unknown) => T): T {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    reject('INVALID_INPUT', `${what} is not valid JSON`);
  }
  try {
    return parse(value);
  } catch (e) {
    return reject('INVALID_INPUT', `${what}: ${e instanceof Error ? e.message.split('\n')[0] : 'invalid'}`);
  }
}
