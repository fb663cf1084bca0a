import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import {
  connect,
  GatewayError,
  hash,
  type ChaincodeEvent,
  type Contract,
  type Gateway,
  type Network,
} from '@hyperledger/fabric-gateway';
import { AsyncQueue } from '../async-queue.js';
import { LedgerError } from '../ledger.error.js';
import type {
  Checkpoint,
  EventStreamOptions,
  Ledger,
  LedgerCall,
  LedgerEvent,
  LedgerEventStream,
  SubmitResult,
} from '../ledger.port.js';
import { MVCC_READ_CONFLICT, PHANTOM_READ_CONFLICT, toLedgerError } from './fabric-errors.js';
import { loadPemIdentity, type PemIdentityFiles } from './fabric-identity.js';

export interface FabricLedgerOptions {
  /** Gateway peer, `host:port`. */
  peerEndpoint: string;
  /** TLS server name to expect when it differs from the host in peerEndpoint. */
  peerHostOverride?: string;
  /** CA certificate(s) of the peer's TLS server certificate, PEM file. */
  tlsRootCertPath: string;
  identity: PemIdentityFiles;
  channel: string;
  chaincode: string;
  /** Deadlines in milliseconds. `submit` covers endorse + order + commit together. */
  timeouts?: { evaluateMs?: number; submitMs?: number };
  /** Attempts for a transaction invalidated by an MVCC/phantom read conflict (each a new proposal). */
  conflictAttempts?: number;
  /** Attempts to endorse while the gateway peer is unreachable (nothing was ordered, so safe). */
  unavailableAttempts?: number;
  /** Event stream: delay before reconnecting after the peer went away. */
  reconnectDelayMs?: number;
}

const PERMANENT_STREAM_ERRORS = new Set<number>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.PERMISSION_DENIED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.UNIMPLEMENTED,
]);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Ledger port over a Hyperledger Fabric v3 network through the Fabric Gateway service
 * (@hyperledger/fabric-gateway over @grpc/grpc-js, TLS). Every call carries a deadline. Retries
 * only where a repeat cannot double-apply: endorsement while the peer is unreachable (nothing was
 * ordered) and a transaction invalidated by a read conflict (a new proposal with a new id). A
 * transaction whose commit status is unknown (deadline passed after it was handed to the
 * orderer) is reported as TIMEOUT and never resubmitted.
 */
export class FabricLedger implements Ledger {
  private closed = false;
  private readonly streams = new Set<AsyncQueue<LedgerEvent>>();

  private constructor(
    private readonly client: grpc.Client,
    private readonly gateway: Gateway,
    private readonly network: Network,
    private readonly contract: Contract,
    private readonly options: FabricLedgerOptions,
  ) {}

  static async connect(options: FabricLedgerOptions): Promise<FabricLedger> {
    const tlsRoot = await readFile(options.tlsRootCertPath);
    const client = new grpc.Client(options.peerEndpoint, grpc.credentials.createSsl(tlsRoot), {
      ...(options.peerHostOverride ? { 'grpc.ssl_target_name_override': options.peerHostOverride } : {}),
      // Come back within a second or two after a peer restart instead of grpc's 120 s ceiling.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000,
    });
    const { identity, signer } = await loadPemIdentity(options.identity);
    const gateway = connect({ client, identity, signer, hash: hash.sha256 });
    const network = gateway.getNetwork(options.channel);
    return new FabricLedger(client, gateway, network, network.getContract(options.chaincode), options);
  }

  private get submitMs(): number {
    return this.options.timeouts?.submitMs ?? 30_000;
  }
  private get evaluateMs(): number {
    return this.options.timeouts?.evaluateMs ?? 10_000;
  }

  async submit(call: LedgerCall): Promise<SubmitResult> {
    this.assertOpen();
    const deadline = Date.now() + (call.timeoutMs ?? this.submitMs);
    const what = `submit ${call.contract}:${call.fn}`;
    const conflictAttempts = this.options.conflictAttempts ?? 3;
    const unavailableAttempts = this.options.unavailableAttempts ?? 3;
    let conflicts = 0;
    let unavailable = 0;
    for (;;) {
      const proposal = this.contract.newProposal(`${call.contract}:${call.fn}`, {
        arguments: [...(call.args ?? [])],
      });
      const txId = proposal.getTransactionId();
      let transaction;
      try {
        transaction = await proposal.endorse({ deadline });
      } catch (e) {
        const err = toLedgerError(e, what, txId);
        if (
          err.code === 'UNAVAILABLE' &&
          ++unavailable < unavailableAttempts &&
          Date.now() + 500 < deadline
        ) {
          await sleep(Math.min(250 * unavailable, deadline - Date.now()));
          continue;
        }
        throw err;
      }
      const result = Buffer.from(transaction.getResult()).toString('utf8');
      let status;
      try {
        const commit = await transaction.submit({ deadline });
        status = await commit.getStatus({ deadline });
      } catch (e) {
        throw toLedgerError(e, what, txId);
      }
      if (status.successful)
        return { transactionId: status.transactionId, blockNumber: status.blockNumber, result };
      if (status.code === MVCC_READ_CONFLICT || status.code === PHANTOM_READ_CONFLICT) {
        if (++conflicts < conflictAttempts && Date.now() < deadline) {
          await sleep(20 * conflicts);
          continue;
        }
        throw new LedgerError(
          'CONFLICT',
          `${what}: read conflict (validation code ${status.code}) after ${conflicts} attempts`,
          { transactionId: txId },
        );
      }
      throw new LedgerError('COMMIT_FAILED', `${what}: transaction invalid, validation code ${status.code}`, {
        transactionId: txId,
      });
    }
  }

  async evaluate(call: LedgerCall): Promise<string> {
    this.assertOpen();
    const proposal = this.contract.newProposal(`${call.contract}:${call.fn}`, {
      arguments: [...(call.args ?? [])],
    });
    try {
      const bytes = await proposal.evaluate({ deadline: Date.now() + (call.timeoutMs ?? this.evaluateMs) });
      return Buffer.from(bytes).toString('utf8');
    } catch (e) {
      throw toLedgerError(e, `evaluate ${call.contract}:${call.fn}`);
    }
  }

  /**
   * Chaincode events that survive peer restarts: the stream remembers the last event it
   * delivered and reconnects from there, so each event arrives exactly once.
   */
  events(options: EventStreamOptions = {}): LedgerEventStream {
    this.assertOpen();
    let position: Checkpoint | undefined = options.checkpoint;
    let startBlock = options.startBlock;
    let current: { close(): void } | undefined;
    let stopped = false;
    const queue = new AsyncQueue<LedgerEvent>(() => {
      stopped = true;
      current?.close();
      this.streams.delete(queue);
    });
    this.streams.add(queue);

    const pump = async (): Promise<void> => {
      while (!stopped && !this.closed) {
        try {
          const from = position;
          const iterable = await this.network.getChaincodeEvents(this.options.chaincode, {
            ...(from
              ? {
                  checkpoint: {
                    getBlockNumber: () => from.blockNumber,
                    getTransactionId: () => from.transactionId,
                  },
                }
              : startBlock !== undefined
                ? { startBlock }
                : {}),
          });
          current = iterable;
          if (stopped) iterable.close();
          for await (const ev of iterable as AsyncIterable<ChaincodeEvent>) {
            const e: LedgerEvent = {
              blockNumber: ev.blockNumber,
              transactionId: ev.transactionId,
              name: ev.eventName,
              payload: Buffer.from(ev.payload).toString('utf8'),
            };
            position = { blockNumber: e.blockNumber, transactionId: e.transactionId };
            startBlock = undefined;
            queue.push(e);
          }
        } catch (e) {
          // Peer gone, restarting, stream reset: reconnect from the last delivered event. Errors
          // that retrying cannot heal (access denied, unknown channel or chaincode) end the stream.
          if (!stopped && e instanceof GatewayError && PERMANENT_STREAM_ERRORS.has(e.code)) {
            queue.end(toLedgerError(e, 'chaincode events'));
            return;
          }
        } finally {
          current = undefined;
        }
        if (!stopped && !this.closed) await sleep(this.options.reconnectDelayMs ?? 500);
      }
    };
    void pump();
    return { [Symbol.asyncIterator]: () => queue, close: () => void queue.return() };
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const q of this.streams) void q.return();
    this.gateway.close();
    this.client.close();
    return Promise.resolve();
  }

  private assertOpen(): void {
    if (this.closed) throw new LedgerError('UNAVAILABLE', 'Fabric ledger connection is closed');
  }
}
