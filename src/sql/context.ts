import type { KeyType } from '../config/schema.js';
import type { KeyExpr, RouteSpec } from './types.js';
import { dedupeKeys, keyId, singleKey } from './keys.js';

export const FEATURE_NOT_SUPPORTED = '0A000';

export type Refusal = Extract<RouteSpec, { type: 'refuse' }>;

/** One appearance of a sharded table in a statement (a self-join has two). */
export interface ShardedOccurrence {
  readonly id: number;
  readonly table: string;
  readonly key: string;
  readonly keyType: KeyType;
}

/**
 * What one statement's analysis has learnt so far, and the routing decision made from it at the end.
 *
 * The model: every appearance of a sharded table is an occurrence. Equalities between shard keys
 * (`o.user_id = u.id` in a join, a correlated sub-SELECT, `u.id IN (SELECT o.user_id ...)`) put two
 * occurrences in one co-location class: for the rows that meet, both live on the same shard, so each shard
 * can do that part of the work alone. A restriction (`u.id = 5`) says which key values of an occurrence can
 * matter at all; it flows along the equalities in the directions where that is sound (from the preserved
 * side of an outer join to the nullable one, from an outer query into a correlated sub-SELECT, ...).
 *
 * The statement may then run on the shards of the restricted keys (or every shard) when all occurrences
 * are in one class, the result rows come from sharded rows (not from a reference table on the preserved
 * side of an outer join, nor from a sharded table seen only through a sub-SELECT), and no sub-SELECT needs
 * several shards' rows at once (LIMIT, aggregates not grouped by the key, ...). If every occurrence is
 * restricted to one and the same key value, all of it is on one shard and none of that matters.
 */
export class StatementContext {
  readonly occurrences: ShardedOccurrence[] = [];
  private readonly parent: number[] = [];
  private readonly restriction: (KeyExpr[] | undefined)[] = [];
  private readonly flows: number[] = [];
  readonly referenceTables: string[] = [];
  /** A reference table this statement writes (DML target, DDL). */
  referenceWritten: string | null = null;
  /** Sharded occurrences this statement writes. */
  readonly shardedWrites: number[] = [];
  /** Assignments to a shard key (UPDATE SET key = ..., ON CONFLICT DO UPDATE SET key = ...). */
  readonly keyChanges: { occ: number; value: KeyExpr | undefined }[] = [];
  readOnly = true;
  refusal: Refusal | null = null;
  /** The first sub-SELECT that needs several shards' rows at once, if any. */
  unsafe: { reason: string; occ: number } | null = null;

  addOccurrence(table: string, key: string, keyType: KeyType): number {
    const id = this.occurrences.length;
    this.occurrences.push({ id, table, key, keyType });
    this.parent.push(id);
    this.restriction.push(undefined);
    return id;
  }

  refuse(message: string, hint?: string, sqlstate = FEATURE_NOT_SUPPORTED): void {
    if (this.refusal !== null) return;
    this.refusal = hint === undefined ? { type: 'refuse', sqlstate, message } : { type: 'refuse', sqlstate, message, hint };
  }

  noteReference(name: string, write: boolean): void {
    if (!this.referenceTables.includes(name)) this.referenceTables.push(name);
    if (write) {
      this.referenceWritten ??= name;
      this.readOnly = false;
    }
  }

  noteShardedWrite(occ: number): void {
    this.shardedWrites.push(occ);
    this.readOnly = false;
  }

  noteUnsafe(reason: string, occ: number): void {
    this.unsafe ??= { reason, occ };
  }

  find(i: number): number {
    let r = i;
    while (this.parent[r] !== r) r = this.parent[r]!;
    let c = i;
    while (this.parent[c] !== r) {
      const next = this.parent[c]!;
      this.parent[c] = r;
      c = next;
    }
    return r;
  }

  /** Records that occurrences a and b are equal on their shard keys (so co-located); false if they cannot be. */
  link(a: number, b: number): boolean {
    if (a === b) return true;
    if (this.occurrences[a]!.keyType !== this.occurrences[b]!.keyType) return false;
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
    return true;
  }

  /** The key values of `from` that matter also bound those of `to`. */
  flow(from: number, to: number): void {
    if (from !== to && this.occurrences[from]!.keyType === this.occurrences[to]!.keyType) this.flows.push(from, to);
  }

  restrict(occ: number, keys: KeyExpr[]): void {
    this.restriction[occ] = narrower(this.restriction[occ], dedupeKeys(keys));
  }

  directRestriction(occ: number): KeyExpr[] | undefined {
    return this.restriction[occ];
  }

  /** True when every one of `occs` is directly restricted to one and the same key value. */
  sameSingleKey(occs: readonly number[]): boolean {
    if (occs.length === 0) return false;
    const first = singleKey(this.restriction[occs[0]!]);
    if (first === undefined) return false;
    const id = keyId(first);
    return occs.every((o) => {
      const k = singleKey(this.restriction[o]);
      return k !== undefined && keyId(k) === id;
    });
  }

  /** Restrictions after flowing them along the recorded equalities. */
  finalRestrictions(): (KeyExpr[] | undefined)[] {
    const r = this.restriction.slice();
    for (let changed = true, rounds = 0; changed && rounds <= r.length; rounds++) {
      changed = false;
      for (let i = 0; i < this.flows.length; i += 2) {
        const from = this.flows[i]!;
        const to = this.flows[i + 1]!;
        const k = r[from];
        if (k === undefined) continue;
        const n = narrower(r[to], k);
        if (n !== r[to]) {
          r[to] = n;
          changed = true;
        }
      }
    }
    return r;
  }

  /**
   * The route of a statement whose parts have all been recorded. `primary` names the table the route is
   * reported for (the written table, or the first sharded table of the FROM list); `anchored` says whether
   * the result rows all come from sharded rows.
   */
  decide(primary: number | undefined, anchored: boolean): RouteSpec {
    if (this.refusal !== null) return this.refusal;
    if (this.occurrences.length === 0) {
      if (this.referenceTables.length === 0 && this.readOnly) return { type: 'none' };
      return { type: 'reference', tables: this.referenceTables.slice(), write: !this.readOnly };
    }
    const main = this.occurrences[this.shardedWrites[0] ?? primary ?? 0]!;
    if (this.referenceWritten !== null) {
      const how = this.shardedWrites.length > 0 ? 'and sharded table' : 'from rows of sharded table';
      return refusal(
        `writing reference table "${this.referenceWritten}" ${how} "${this.occurrences[0]!.table}" in one statement is not supported`,
        'a reference table must get the same rows on every shard; read the sharded rows first, then write the reference table in its own statement',
      );
    }
    const restrictions = this.finalRestrictions();
    const route = this.routeFrom(main, restrictions, anchored);
    if (route.type === 'refuse') return route;
    for (const change of this.keyChanges) {
      const occ = this.occurrences[change.occ]!;
      const single = route.type === 'keys' ? singleKey(route.keys) : undefined;
      if (change.value !== undefined && single !== undefined && keyId(change.value) === keyId(single)) continue;
      return refusal(
        `changing the shard key "${occ.key}" of sharded table "${occ.table}" is not supported: it would move the row to another shard; delete and re-insert it`,
      );
    }
    return route;
  }

  private routeFrom(main: ShardedOccurrence, restrictions: (KeyExpr[] | undefined)[], anchored: boolean): RouteSpec {
    // Everything restricted to one and the same value: one shard holds all of it.
    const single = singleKey(restrictions[0]);
    if (single !== undefined) {
      const id = keyId(single);
      if (restrictions.every((r) => r !== undefined && singleKey(r) !== undefined && keyId(singleKey(r)!) === id))
        return { type: 'keys', table: main.table, keys: [single] };
    }
    if (this.unsafe !== null) {
      const occ = this.occurrences[this.unsafe.occ]!;
      return refusal(
        `${this.unsafe.reason} in a sub-SELECT over sharded table "${occ.table}" needs the rows of every shard at once, which is not supported`,
        `restrict the sub-SELECT to one value of "${occ.key}", or correlate it on the shard key`,
      );
    }
    const root = this.find(main.id);
    const other = this.occurrences.find((o) => this.find(o.id) !== root);
    if (other !== undefined) return crossShardJoin(main, other);
    if (!anchored) {
      return refusal(
        `cross-shard query on sharded table "${main.table}" is not supported: its result rows do not all come from rows of "${main.table}", so every shard would answer for itself`,
        `restrict "${main.table}" to one value of "${main.key}", or select from it directly instead of through an outer join with a non-sharded table or a sub-SELECT`,
      );
    }
    if (restrictions.every((r) => r !== undefined)) {
      const keys = dedupeKeys(restrictions.flatMap((r) => r!));
      return { type: 'keys', table: main.table, keys };
    }
    return { type: 'all', table: main.table };
  }
}

export function refusal(message: string, hint?: string, sqlstate = FEATURE_NOT_SUPPORTED): Refusal {
  return hint === undefined ? { type: 'refuse', sqlstate, message } : { type: 'refuse', sqlstate, message, hint };
}

export function crossShardJoin(a: ShardedOccurrence, b: ShardedOccurrence): Refusal {
  const hint =
    a.keyType !== b.keyType
      ? `their shard keys have different types (${a.keyType}, ${b.keyType}), so equal-looking values may live on different shards`
      : a.table === b.table
        ? `equate the shard key "${a.key}" of both uses of "${a.table}", or restrict both to the same shard key value`
        : `join on the shard key ("${a.table}".${a.key} = "${b.table}".${b.key}), or restrict both to the same shard key value`;
  return refusal(
    `cross-shard join of "${a.table}" and "${b.table}" is not supported; join them on the shard key so each shard can answer alone`,
    hint,
  );
}

/**
 * Two restrictions that both hold: literal lists intersect (an empty intersection matches no row); otherwise
 * the one naming fewer keys is kept (a parameter's value is unknown until Bind).
 */
function narrower(a: KeyExpr[] | undefined, b: KeyExpr[]): KeyExpr[] {
  if (a === undefined) return b;
  if (a.every(isLiteral) && b.every(isLiteral)) {
    const ids = new Set(b.map(keyId));
    const both = a.filter((k) => ids.has(keyId(k)));
    if (both.length === a.length) return a;
    return both.length > 0 ? both : [{ kind: 'null' }];
  }
  const la = a.some((k) => k.kind === 'param-array') ? Infinity : a.length;
  const lb = b.some((k) => k.kind === 'param-array') ? Infinity : b.length;
  return lb < la ? b : a;
}

function isLiteral(k: KeyExpr): boolean {
  return k.kind === 'const' || k.kind === 'null';
}
