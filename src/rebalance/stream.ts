/**
 * The changes of one source shard since its slot's snapshot, decoded by pgoutput (pg-logical-replication)
 * and handed to `apply` one at a time, in commit order. Values stay in Postgres's text form. Markers
 * (pg_logical_emit_message on the source) tell when everything committed before them has been applied.
 */
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { ShardConfig } from '../config/schema.js';
import { literal, rows } from './pg.js';

export type Change =
  | { kind: 'insert' | 'update'; table: string; columns: string[]; values: (string | null)[]; /** update: the old key (its primary key columns) */ oldKey: Record<string, string | null> | null }
  | { kind: 'delete'; table: string; key: Record<string, string | null> }
  | { kind: 'truncate'; tables: string[] };

export const MARKER_PREFIX = 'pgshard-rebalance';

/** pgoutput values as text: the library would parse them into JavaScript values. */
class TextPgoutputPlugin extends PgoutputPlugin {
  override parse(buffer: Buffer): Pgoutput.Message {
    const m = super.parse(buffer);
    if (m.tag === 'relation') for (const c of m.columns) c.parser = (raw: unknown) => raw;
    return m;
  }
}

export function parseLsn(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

const tableName = (r: Pgoutput.MessageRelation): string => (r.schema === 'public' ? r.name : `${r.schema}.${r.name}`);

export class ChangeStream {
  private service: LogicalReplicationService | null = null;
  private markerSeq = 0;
  private waiting = new Map<string, () => void>();
  private failed: Error | null = null;
  /** End of the last transaction applied. */
  appliedLsn = 0n;
  changes = 0;

  constructor(
    readonly source: ShardConfig,
    readonly slot: string,
    readonly publication: string,
    private readonly apply: (c: Change) => Promise<void>,
    private readonly log: Logger,
    private readonly onError: (e: Error) => void,
  ) {}

  start(): void {
    const s = this.source;
    const service = new LogicalReplicationService(
      // pgoutput writes values with the walsender's settings: the styles the apply connections read (pg.ts).
      { host: s.host, port: s.port, database: s.database, user: s.user, password: s.password, application_name: 'pgshard-rebalance', options: '-c datestyle=ISO,MDY -c intervalstyle=postgres -c extra_float_digits=3' },
      { acknowledge: { auto: true, timeoutSeconds: 1 }, flowControl: { enabled: true } },
    );
    this.service = service;
    service.on('data', async (_lsn: string, m: Pgoutput.Message) => {
      if (this.failed) return;
      try {
        await this.handle(m);
      } catch (e) {
        this.fail(e as Error);
      }
    });
    service.on('error', (e: Error) => this.fail(e));
    const plugin = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: [this.publication], messages: true });
    service.subscribe(plugin, this.slot).catch((e: Error) => this.fail(e));
  }

  private fail(e: Error): void {
    if (this.failed || !this.service) return;
    this.failed = e;
    this.log.warn({ shard: this.source.id, err: e.message }, 'rebalance change stream failed');
    this.onError(e);
  }

  private async handle(m: Pgoutput.Message): Promise<void> {
    switch (m.tag) {
      case 'insert':
        this.changes++;
        return this.apply({ kind: 'insert', table: tableName(m.relation), columns: Object.keys(m.new), values: Object.values(m.new) as (string | null)[], oldKey: null });
      case 'update': {
        this.changes++;
        // Columns whose TOASTed value did not change are not sent (undefined): leave them as they are.
        const cols = Object.keys(m.new).filter((c) => m.new[c] !== undefined);
        return this.apply({ kind: 'update', table: tableName(m.relation), columns: cols, values: cols.map((c) => m.new[c] as string | null), oldKey: (m.key ?? null) as Record<string, string | null> | null });
      }
      case 'delete':
        this.changes++;
        return this.apply({ kind: 'delete', table: tableName(m.relation), key: (m.key ?? m.old ?? {}) as Record<string, string | null> });
      case 'truncate':
        return this.apply({ kind: 'truncate', tables: m.relations.map(tableName) });
      case 'commit':
        if (m.commitEndLsn) this.appliedLsn = parseLsn(m.commitEndLsn);
        return;
      case 'message':
        if (m.prefix === MARKER_PREFIX) {
          const token = Buffer.from(m.content).toString('utf8');
          if (m.messageLsn) this.appliedLsn = parseLsn(m.messageLsn);
          this.waiting.get(token)?.();
          this.waiting.delete(token);
        }
        return;
      default:
        return;
    }
  }

  /**
   * Emits a marker on the source and waits (at most `timeoutMs`) until the stream has applied everything
   * before it. Resolves with the WAL bytes that were not applied yet when the marker was emitted, or null
   * on timeout.
   */
  async marker(client: pg.Client, timeoutMs: number): Promise<number | null> {
    if (this.failed) throw this.failed;
    const token = `${this.slot}:${++this.markerSeq}`;
    const seen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(token);
        resolve(false);
      }, timeoutMs);
      this.waiting.set(token, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    const [[lsn]] = (await rows(client, `SELECT pg_current_wal_lsn()::text, pg_logical_emit_message(false, ${literal(MARKER_PREFIX)}, ${literal(token)})`)) as [[string]];
    const lag = parseLsn(lsn) - this.appliedLsn;
    const ok = await seen;
    if (this.failed) throw this.failed;
    return ok ? Math.max(0, Number(lag)) : null;
  }

  async stop(): Promise<void> {
    const s = this.service;
    this.service = null;
    for (const w of this.waiting.values()) w();
    this.waiting.clear();
    if (s) await s.destroy().catch(() => undefined);
  }
}
