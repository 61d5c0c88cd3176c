import type { TransactionStmt } from 'libpg-query';
import type { TxEffect } from './types.js';

export interface TransactionOutcome {
  tag: string;
  tx: TxEffect;
  readOnly: boolean;
}

/** BEGIN / COMMIT / ROLLBACK / savepoints / two-phase commit. */
export function transaction(stmt: TransactionStmt): TransactionOutcome {
  const savepoint = stmt.savepoint_name ?? '';
  switch (stmt.kind ?? 'TRANS_STMT_BEGIN') {
    case 'TRANS_STMT_BEGIN':
      return { tag: 'BEGIN', tx: { type: 'begin' }, readOnly: true };
    case 'TRANS_STMT_START':
      return { tag: 'START TRANSACTION', tx: { type: 'begin' }, readOnly: true };
    case 'TRANS_STMT_COMMIT':
      // COMMIT AND CHAIN ends the transaction and starts another at once.
      return { tag: 'COMMIT', tx: stmt.chain === true ? { type: 'other' } : { type: 'commit' }, readOnly: true };
    case 'TRANS_STMT_ROLLBACK':
      return { tag: 'ROLLBACK', tx: stmt.chain === true ? { type: 'other' } : { type: 'rollback' }, readOnly: true };
    case 'TRANS_STMT_SAVEPOINT':
      return { tag: 'SAVEPOINT', tx: { type: 'savepoint', name: savepoint }, readOnly: true };
    case 'TRANS_STMT_RELEASE':
      return { tag: 'RELEASE', tx: { type: 'release', name: savepoint }, readOnly: true };
    case 'TRANS_STMT_ROLLBACK_TO':
      return { tag: 'ROLLBACK', tx: { type: 'rollback-to', name: savepoint }, readOnly: true };
    case 'TRANS_STMT_PREPARE':
      return { tag: 'PREPARE TRANSACTION', tx: { type: 'other' }, readOnly: false };
    case 'TRANS_STMT_COMMIT_PREPARED':
      return { tag: 'COMMIT PREPARED', tx: { type: 'other' }, readOnly: false };
    case 'TRANS_STMT_ROLLBACK_PREPARED':
      return { tag: 'ROLLBACK PREPARED', tx: { type: 'other' }, readOnly: false };
    default:
      return { tag: 'BEGIN', tx: { type: 'other' }, readOnly: true };
  }
}
