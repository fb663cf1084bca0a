import { Contract, type Context } from 'fabric-contract-api';
import { AnchorContract } from '../contracts/anchor.contract.js';
import { ConsentContract } from '../contracts/consent.contract.js';
import { ContractRejection } from '../contracts/contract-error.js';
import { IdentityContract } from '../contracts/identity.contract.js';
import { LedgerError } from '../ledger.error.js';
import type { ContractName } from '../ledger.port.js';
import { EmbeddedClientIdentity, type EmbeddedStub } from './embedded-stub.js';

type TxFn = (ctx: Context, ...args: string[]) => Promise<unknown>;

/**
 * Dispatches a call to the same contract classes the chaincode package serves, the way
 * fabric-contract-api's ChaincodeFromContract does: before hook, function, after hook, with
 * the argument count checked and functions inherited from Contract (or starting with `_`) not
 * callable.
 */
export class ContractRunner {
  private readonly contracts = new Map<string, Contract>([
    ['consent', new ConsentContract()],
    ['anchor', new AnchorContract()],
    ['identity', new IdentityContract()],
  ]);

  async run(
    contract: ContractName,
    fn: string,
    args: readonly string[],
    stub: EmbeddedStub,
    caller: { mspId: string; id: string },
  ): Promise<string> {
    const c = this.contracts.get(contract);
    const method = c ? this.lookup(c, fn) : undefined;
    if (!c || !method)
      throw new LedgerError('REJECTED_BY_CONTRACT', `REJECTED[UNKNOWN_FUNCTION] ${contract}:${fn}`, {
        reason: 'UNKNOWN_FUNCTION',
      });
    if (method.length - 1 !== args.length) {
      throw new LedgerError(
        'REJECTED_BY_CONTRACT',
        `REJECTED[INVALID_INPUT] expected ${method.length - 1} arguments, got ${args.length}`,
        {
          reason: 'INVALID_INPUT',
        },
      );
    }
    const ctx = c.createContext();
    (ctx as unknown as { stub: unknown }).stub = stub;
    (ctx as unknown as { clientIdentity: unknown }).clientIdentity = new EmbeddedClientIdentity(
      caller.mspId,
      caller.id,
    );
    try {
      await c.beforeTransaction(ctx);
      const result = await method.call(c, ctx, ...args);
      await c.afterTransaction(ctx, result);
      return result === undefined || result === null
        ? ''
        : typeof result === 'string'
          ? result
          : JSON.stringify(result);
    } catch (e) {
      if (e instanceof ContractRejection)
        throw new LedgerError('REJECTED_BY_CONTRACT', e.message, { reason: e.reason, cause: e });
      // Any other throw is a chaincode failure; on Fabric it surfaces as a failed endorsement.
      throw new LedgerError('ENDORSEMENT_FAILED', e instanceof Error ? e.message : String(e), { cause: e });
    }
  }

  private lookup(c: Contract, fn: string): TxFn | undefined {
    if (fn.startsWith('_') || fn === 'constructor' || fn in Contract.prototype) return undefined;
    const proto = Object.getPrototypeOf(c) as Record<string, unknown>;
    if (!Object.prototype.hasOwnProperty.call(proto, fn)) return undefined;
    const m = proto[fn];
    return typeof m === 'function' ? (m as TxFn) : undefined;
  }
}
