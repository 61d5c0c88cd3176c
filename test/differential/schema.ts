/**
 * The differential oracle's schema and data: sharded tables with the awkward values of each type (NULLs,
 * duplicates, skewed groups, mixed-case/accented/emoji text, large-scale numerics, NaN and ±Infinity,
 * timestamps entered in several time zones, BC and infinite dates), a co-located pair (items/details on
 * the item id), a table with a composite key, and a reference table. Rows are generated from the seed.
 *
 * Known limits of the data (documented in the test): no float -0 (it prints differently from 0 while
 * comparing equal, so a tie between them has no single right order); unconstrained numerics all carry
 * 10 fractional digits (1.5 and 1.50 compare equal but print differently).
 */
import { Random } from './random.js';

export const DDL = `
CREATE TABLE items (
  id bigint PRIMARY KEY,
  grp int,
  cat text,
  code varchar(8),
  qty int,
  small smallint,
  big bigint,
  price numeric(12,3),
  ratio numeric,
  f8 double precision,
  f4 real,
  flag boolean,
  ts timestamptz,
  day date,
  u uuid,
  iv interval,
  bin bytea
);
CREATE TABLE details (
  item_id bigint NOT NULL,
  seq int NOT NULL,
  amount numeric(10,2),
  note text,
  at timestamp,
  PRIMARY KEY (item_id, seq)
);
CREATE TABLE pairs (a int NOT NULL, b text NOT NULL, v int, w numeric(8,1), PRIMARY KEY (a, b));
CREATE TABLE kinds (grp int PRIMARY KEY, label text NOT NULL, weight numeric(6,2));
`;

export const TABLES = {
  items: { shard_key: 'id', key_type: 'bigint' },
  details: { shard_key: 'item_id', key_type: 'bigint' },
  pairs: { shard_key: 'a', key_type: 'int' },
  kinds: { reference: true },
} as const;

export type Kind = 'int' | 'bigint' | 'numeric' | 'float' | 'text' | 'bool' | 'ts' | 'date' | 'uuid' | 'timestamp' | 'interval' | 'bytea';

export interface Column {
  name: string;
  kind: Kind;
  /** Few distinct values: good for GROUP BY and DISTINCT. */
  lowCard?: boolean;
}

export const COLUMNS: Record<'items' | 'details' | 'pairs' | 'kinds', Column[]> = {
  items: [
    { name: 'id', kind: 'bigint' },
    { name: 'grp', kind: 'int', lowCard: true },
    { name: 'cat', kind: 'text', lowCard: true },
    { name: 'code', kind: 'text' },
    { name: 'qty', kind: 'int' },
    { name: 'small', kind: 'int', lowCard: true },
    { name: 'big', kind: 'bigint' },
    { name: 'price', kind: 'numeric' },
    { name: 'ratio', kind: 'numeric' },
    { name: 'f8', kind: 'float' },
    { name: 'f4', kind: 'float' },
    { name: 'flag', kind: 'bool', lowCard: true },
    { name: 'ts', kind: 'ts' },
    { name: 'day', kind: 'date', lowCard: true },
    { name: 'u', kind: 'uuid' },
    { name: 'iv', kind: 'interval', lowCard: true },
    { name: 'bin', kind: 'bytea' },
  ],
  details: [
    { name: 'item_id', kind: 'bigint' },
    { name: 'seq', kind: 'int', lowCard: true },
    { name: 'amount', kind: 'numeric' },
    { name: 'note', kind: 'text', lowCard: true },
    { name: 'at', kind: 'timestamp' },
  ],
  pairs: [
    { name: 'a', kind: 'int' },
    { name: 'b', kind: 'text', lowCard: true },
    { name: 'v', kind: 'int' },
    { name: 'w', kind: 'numeric', lowCard: true },
  ],
  kinds: [
    { name: 'grp', kind: 'int' },
    { name: 'label', kind: 'text' },
    { name: 'weight', kind: 'numeric' },
  ],
};

const CATS = ['apple', 'Apple', 'APPLE', 'éclair', 'Éclair', 'eclair', 'zebra', 'Zürich', 'naïve', '🍕 pizza', 'pizza', '', 'a b', 'x,y', 'quote"d', 'back\\slash', 'NULL', 'ß', 'ﬀ ligature'];
const NOTES = ['ok', 'late', 'LATE', 'dup', 'dup', 'ünïcödé', '日本語', '😀', '', 'z'];
const ZONES = ['+00', '+05:30', '-08', '+12:45', '-03:30', '+01'];

function q(s: string | null): string {
  return s === null ? 'NULL' : `'${s.replace(/'/g, "''")}'`;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

function randomTs(r: Random): string {
  if (r.chance(0.01)) return r.pick(['infinity', '-infinity']);
  const y = r.chance(0.02) ? r.int(1, 400) : r.int(1990, 2030);
  const bc = y < 400 && r.chance(0.5) ? ' BC' : '';
  const frac = r.chance(0.3) ? `.${pad(r.int(0, 999999), 6)}` : '';
  return `${pad(y, 4)}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))} ${pad(r.int(0, 23))}:${pad(r.int(0, 59))}:${pad(r.int(0, 59))}${frac}${r.pick(ZONES)}${bc}`;
}

function randomDate(r: Random): string {
  if (r.chance(0.01)) return r.pick(['infinity', '-infinity']);
  if (r.chance(0.02)) return `00${r.int(10, 99)}-0${r.int(1, 9)}-1${r.int(0, 9)} BC`;
  return `20${pad(r.int(18, 25))}-${pad(r.int(1, 12))}-01`; // few distinct days
}

function randomFloat(r: Random, real = false): string {
  if (r.chance(0.04)) return r.pick(['NaN', 'Infinity', '-Infinity']);
  // No values near the largest float: a float sum may overflow on a shard and not on one Postgres (or the
  // reverse, by row order); pgshard refuses float sums anyway.
  if (r.chance(0.1)) return r.pick(real ? ['1.5', '2', '-3.25', '1e-30', '3.4e30'] : ['1.5', '2', '-3.25', '1e-300', '1.5e150']);
  const v = (r.next() - 0.5) * 10 ** r.int(-3, 8);
  return v === 0 ? '0' : String(v);
}

function randomNumeric10(r: Random): string {
  if (r.chance(0.02)) return r.pick(['NaN', 'Infinity', '-Infinity']);
  const int = BigInt(r.int(-99999, 99999)) * BigInt(r.chance(0.2) ? 10 ** 12 : 1);
  const frac = pad(r.int(0, 99999), 5) + pad(r.int(0, 99999), 5);
  const neg = int < 0n || (int === 0n && r.chance(0.5));
  return `${neg ? '-' : ''}${int < 0n ? -int : int}.${frac}`;
}

function uuid(r: Random): string {
  const h = (n: number) => Array.from({ length: n }, () => r.int(0, 15).toString(16)).join('');
  return `${h(8)}-${h(4)}-4${h(3)}-a${h(3)}-${h(12)}`;
}

export interface Data {
  /** INSERT statements for each table (multi-row), and the key of each row for routing. */
  items: { key: number; values: string }[];
  details: { key: number; values: string }[];
  pairs: { key: number; values: string }[];
  kinds: string[];
}

export function generateData(seed: number, nItems = 500): Data {
  const r = new Random(seed ^ 0x5eed);
  const uuids = Array.from({ length: 40 }, () => uuid(r));
  const items: Data['items'] = [];
  for (let i = 0; i < nItems; i++) {
    const id = r.chance(0.5) ? i + 1 : 100_000 + i * 7919; // dense and sparse keys
    const grp = r.chance(0.08) ? null : Math.floor(10 * r.next() ** 2); // skewed
    const vals = [
      String(id),
      grp === null ? 'NULL' : String(grp),
      r.chance(0.08) ? 'NULL' : q(r.pick(CATS)),
      r.chance(0.1) ? 'NULL' : q(Array.from({ length: r.int(0, 8) }, () => r.pick(['a', 'b', 'Z', 'é', '1'])).join('')),
      r.chance(0.1) ? 'NULL' : String(r.int(-50, 1000)),
      r.chance(0.1) ? 'NULL' : String(r.int(-3, 5)),
      r.chance(0.1) ? 'NULL' : String(BigInt(r.int(-4_000_000, 4_000_000)) * 1_000_000_000_000n + BigInt(r.int(0, 999_999))),
      r.chance(0.1) ? 'NULL' : r.chance(0.02) ? "'NaN'" : (r.int(-999999, 9999999) / 1000).toFixed(3),
      r.chance(0.1) ? 'NULL' : `'${randomNumeric10(r)}'`,
      r.chance(0.08) ? 'NULL' : `'${randomFloat(r)}'`,
      r.chance(0.08) ? 'NULL' : `'${randomFloat(r, true)}'::real`,
      r.chance(0.15) ? 'NULL' : r.pick(['true', 'false']),
      r.chance(0.08) ? 'NULL' : `'${randomTs(r)}'`,
      r.chance(0.08) ? 'NULL' : `'${randomDate(r)}'`,
      r.chance(0.1) ? 'NULL' : `'${r.pick(uuids)}'`,
      // '1 day' and '24 hours' are equal intervals that print differently: only one spelling per value here.
      r.chance(0.1) ? 'NULL' : `'${r.pick(['1 day', '36 hours', '1 mon', '-2 days 03:00:00', '1 year 2 mons', '00:00:00.5', '-00:01:00', '29 days', '1 day 00:00:01'])}'`,
      r.chance(0.1) ? 'NULL' : `'\\x${Array.from({ length: r.int(0, 4) }, () => r.pick(['00', '7f', '80', 'ff', '61'])).join('')}'`,
    ];
    items.push({ key: id, values: `(${vals.join(', ')})` });
  }
  const details: Data['details'] = [];
  for (const it of items) {
    const n = r.weighted([[3, 0], [4, 1], [3, 2], [1, 5]] as const);
    for (let s = 1; s <= n; s++) {
      const vals = [
        String(it.key),
        String(s),
        r.chance(0.1) ? 'NULL' : (r.int(-99999, 999999) / 100).toFixed(2),
        r.chance(0.1) ? 'NULL' : q(r.pick(NOTES)),
        r.chance(0.1) ? 'NULL' : `'20${pad(r.int(20, 24))}-${pad(r.int(1, 12))}-${pad(r.int(1, 28))} ${pad(r.int(0, 23))}:00:${pad(r.int(0, 59))}'`,
      ];
      details.push({ key: it.key, values: `(${vals.join(', ')})` });
    }
  }
  const pairs: Data['pairs'] = [];
  for (let a = 1; a <= 80; a++) {
    for (const b of r.sample(['x', 'y', 'Y', 'z', 'é', ''], r.int(1, 4))) {
      pairs.push({ key: a, values: `(${a}, ${q(b)}, ${r.chance(0.1) ? 'NULL' : r.int(-20, 20)}, ${r.chance(0.1) ? 'NULL' : (r.int(-50, 50) / 10).toFixed(1)})` });
    }
  }
  const kinds = Array.from({ length: 8 }, (_, g) => `(${g}, ${q(r.pick(['Alpha', 'beta', 'Gamma', 'délta', 'beta']))}, ${r.chance(0.2) ? 'NULL' : (r.int(0, 9999) / 100).toFixed(2)})`);
  return { items, details, pairs, kinds };
}
