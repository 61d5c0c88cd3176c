/**
 * Date and time values as Postgres prints them with DateStyle ISO and IntervalStyle postgres, turned into
 * numbers that order and compare exactly as Postgres's own comparison functions do:
 * date → days, timestamp/timestamptz → microseconds (timestamptz at UTC, from the printed offset),
 * time → microseconds, timetz → (UTC microseconds, zone), interval → the 128-bit "span" of
 * interval_cmp_value (months count 30 days, days 24 hours). ±infinity sort beyond every finite value.
 * Text that is not in these styles is rejected (null), and the caller refuses the merge.
 */

const USECS_PER_DAY = 86_400_000_000n;
export const POS_INF = 1n << 100n;
export const NEG_INF = -(1n << 100n);

/** Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (y astronomical: 1 BC = 0). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function dateDays(y: string, m: string, d: string, bc: string | undefined): number {
  let year = Number(y);
  if (bc) year = 1 - year;
  return daysFromCivil(year, Number(m), Number(d));
}

function fraction(f: string | undefined): bigint {
  if (!f) return 0n;
  return BigInt(f.slice(1).padEnd(6, '0').slice(0, 6));
}

function timeMicros(h: string, mi: string, s: string, f: string | undefined): bigint {
  return ((BigInt(h) * 60n + BigInt(mi)) * 60n + BigInt(s)) * 1_000_000n + fraction(f);
}

/** Zone offset in seconds east of UTC from "+05", "-03:30", "+00:53:28". */
function zoneSeconds(z: string): number {
  const sign = z[0] === '-' ? -1 : 1;
  const parts = z.slice(1).split(':').map(Number);
  return sign * ((parts[0] ?? 0) * 3600 + (parts[1] ?? 0) * 60 + (parts[2] ?? 0));
}

function infinity(s: string): bigint | null {
  if (s === 'infinity') return POS_INF;
  if (s === '-infinity') return NEG_INF;
  return null;
}

const DATE = /^(\d{4,})-(\d\d)-(\d\d)( BC)?$/;
const TIMESTAMP = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?( BC)?$/;
const TIMESTAMPTZ = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(\.\d+)?([+-]\d\d(?::\d\d){0,2})( BC)?$/;
const TIME = /^(\d\d):(\d\d):(\d\d)(\.\d+)?$/;
const TIMETZ = /^(\d\d):(\d\d):(\d\d)(\.\d+)?([+-]\d\d(?::\d\d){0,2})$/;

export function parseDate(s: string): bigint | null {
  const inf = infinity(s);
  if (inf !== null) return inf;
  const m = DATE.exec(s);
  return m ? BigInt(dateDays(m[1]!, m[2]!, m[3]!, m[4])) : null;
}

export function parseTimestamp(s: string): bigint | null {
  const inf = infinity(s);
  if (inf !== null) return inf;
  const m = TIMESTAMP.exec(s);
  if (!m) return null;
  return BigInt(dateDays(m[1]!, m[2]!, m[3]!, m[8])) * USECS_PER_DAY + timeMicros(m[4]!, m[5]!, m[6]!, m[7]);
}

export function parseTimestamptz(s: string): bigint | null {
  const inf = infinity(s);
  if (inf !== null) return inf;
  const m = TIMESTAMPTZ.exec(s);
  if (!m) return null;
  const local = BigInt(dateDays(m[1]!, m[2]!, m[3]!, m[9])) * USECS_PER_DAY + timeMicros(m[4]!, m[5]!, m[6]!, m[7]);
  return local - BigInt(zoneSeconds(m[8]!)) * 1_000_000n;
}

export function parseTime(s: string): bigint | null {
  const m = TIME.exec(s);
  return m ? timeMicros(m[1]!, m[2]!, m[3]!, m[4]) : null;
}

/**
 * timetz_cmp_internal: by the UTC time, then by zone (tz is stored as seconds *west* of UTC; a larger
 * stored zone sorts later). Returns [utc micros, stored zone] pairs to compare in order.
 */
export function parseTimetz(s: string): [bigint, number] | null {
  const m = TIMETZ.exec(s);
  if (!m) return null;
  const east = zoneSeconds(m[5]!);
  return [timeMicros(m[1]!, m[2]!, m[3]!, m[4]) - BigInt(east) * 1_000_000n, -east];
}

const INTERVAL_UNIT = /^([+-]?\d+) (years?|mons?|days?)$/;
const INTERVAL_TIME = /^([+-])?(\d+):(\d\d):(\d\d)(\.\d+)?$/;

/** IntervalStyle postgres: "1 year 2 mons -3 days +04:05:06.5". The span of interval_cmp_value. */
export function parseInterval(s: string): bigint | null {
  const inf = infinity(s);
  if (inf !== null) return inf;
  const f = intervalFields(s);
  return f === null ? null : f.micros + (f.days + f.months * 30n) * USECS_PER_DAY;
}

/** The months, days and microseconds an interval's text (IntervalStyle postgres) spells out. */
function intervalFields(s: string): { months: bigint; days: bigint; micros: bigint } | null {
  const tokens = s.split(' ');
  let months = 0n;
  let days = 0n;
  let micros = 0n;
  let any = false;
  for (let i = 0; i < tokens.length; ) {
    if (i + 1 < tokens.length) {
      const u = INTERVAL_UNIT.exec(`${tokens[i]} ${tokens[i + 1]}`);
      if (u) {
        const n = BigInt(u[1]!);
        const unit = u[2]!;
        if (unit.startsWith('year')) months += n * 12n;
        else if (unit.startsWith('mon')) months += n;
        else days += n;
        i += 2;
        any = true;
        continue;
      }
    }
    const t = INTERVAL_TIME.exec(tokens[i]!);
    if (!t || i !== tokens.length - 1) return null;
    const v = timeMicros(t[2]!, t[3]!, t[4]!, t[5]);
    micros = t[1] === '-' ? -v : v;
    i++;
    any = true;
  }
  return any ? { months, days, micros } : null;
}

// The same values split as Postgres stores them, for binary encoding (src/execute/binary.ts).

type Inf = 'infinity' | '-infinity';
const infName = (s: string): Inf | null => (s === 'infinity' || s === '-infinity' ? s : null);

/** Days since 1970-01-01, or ±infinity. */
export function parseDateParts(s: string): bigint | Inf | null {
  return infName(s) ?? parseDate(s);
}

/** Microseconds since 1970-01-01 00:00, or ±infinity. */
export function parseTimestampParts(s: string): bigint | Inf | null {
  return infName(s) ?? parseTimestamp(s);
}

/** Microseconds since 1970-01-01 00:00 UTC, or ±infinity. */
export function parseTimestamptzParts(s: string): bigint | Inf | null {
  return infName(s) ?? parseTimestamptz(s);
}

export function parseTimeParts(s: string): bigint | null {
  return parseTime(s);
}

/** An interval as stored: months, days, microseconds (IntervalStyle postgres), or ±infinity. */
export function parseIntervalParts(s: string): { months: number; days: number; micros: bigint } | Inf | null {
  const inf = infName(s);
  if (inf !== null) return inf;
  const f = intervalFields(s);
  return f === null ? null : { months: Number(f.months), days: Number(f.days), micros: f.micros };
}
