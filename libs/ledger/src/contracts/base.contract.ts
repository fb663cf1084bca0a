import { Contract, type Context } from 'fabric-contract-api';
import { ContractRejection } from './contract-error.js';

/** Shared behaviour: an unknown function is a typed rejection, the same on Fabric and embedded. */
export abstract class BaseContract extends Contract {
  override unknownTransaction(ctx: Context): Promise<void> {
    const { fcn } = ctx.stub.getFunctionAndParameters();
    return Promise.reject(new ContractRejection('UNKNOWN_FUNCTION', `${this.getName()}: no function ${fcn}`));
  }
}
