/** COPY FROM STDIN row splitting: byte fixtures in odd chunkings, key decoding, options from the statement. */
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { loadModule, parseSync, type CopyStmt } from 'libpg-query';
import { CopyRowSplitter, copyOptionsFromAst, type CopyRow, type CopySplitOptions } from '../../src/execute/copy-split.js';
import { PgError } from '../../src/protocol/errors.js';

await loadModule();

interface Split {
  rows: { bytes: string; key: string | null }[];
  header: string | null;
  marker: boolean;
}

/** Feeds `data` in the given chunk sizes (cycled) and collects everything the splitter reports. */
function split(opts: CopySplitOptions, data: Buffer | string, sizes: number[] = [data.length || 1]): Split {
  const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const s = new CopyRowSplitter(opts);
  const got: CopyRow[] = [];
  let header: Buffer | null = null;
  let p = 0;
  for (let k = 0; p < buf.length; k++) {
    const n = Math.max(1, sizes[k % sizes.length]!);
    got.push(...s.push(buf.subarray(p, p + n)));
    header ??= s.takeHeader();
    p += n;
  }
  got.push(...s.end());
  header ??= s.takeHeader();
  return { rows: got.map((r) => ({ bytes: r.bytes.toString('utf8'), key: r.key })), header: header?.toString('utf8') ?? null, marker: s.sawEndMarker };
}

/** Every split of `data` into two chunks, and one byte at a time, gives the same result as one chunk. */
function sameAtEveryBoundary(t: Test, opts: CopySplitOptions, data: string): Split {
  const whole = split(opts, data);
  const buf = Buffer.from(data, 'utf8');
  for (let cut = 1; cut < buf.length; cut++) {
    const s = new CopyRowSplitter(opts);
    const rows = [...s.push(buf.subarray(0, cut)), ...s.push(buf.subarray(cut)), ...s.end()];
    t.same(
      rows.map((r) => ({ bytes: r.bytes.toString('utf8'), key: r.key })),
      whole.rows,
      `cut at ${cut}`,
    );
  }
  t.same(split(opts, data, [1]), whole, 'one byte at a time');
  return whole;
}

function throwsPg(t: Test, fn: () => unknown, code: string, message: string | RegExp): void {
  try {
    fn();
    t.fail(`expected ${code} ${String(message)}`);
  } catch (e) {
    t.ok(e instanceof PgError, 'a PgError');
    t.equal((e as PgError).code, code);
    t.match((e as PgError).message, message);
  }
}

const TEXT0: CopySplitOptions = { format: 'text', keyColumn: 0 };
const TEXT1: CopySplitOptions = { format: 'text', keyColumn: 1 };
const CSV0: CopySplitOptions = { format: 'csv', keyColumn: 0 };
const CSV1: CopySplitOptions = { format: 'csv', keyColumn: 1 };

t.test('text: rows keep their exact bytes; keys are the key field', async (t) => {
  const r = sameAtEveryBoundary(t, TEXT1, 'a\t1\tx\nb\t22\ty\n\t333\t\n');
  t.same(r.rows, [
    { bytes: 'a\t1\tx\n', key: '1' },
    { bytes: 'b\t22\ty\n', key: '22' },
    { bytes: '\t333\t\n', key: '333' },
  ]);
  t.equal(r.marker, false);
});

t.test('text: backslash escapes in the key, as COPY decodes them', async (t) => {
  const cases: [string, string | null][] = [
    ['\\N', null],
    ['\\\\N', '\\N'], // an escaped backslash: the raw text is not the NULL marker
    ['k\\tey', 'k\tey'],
    ['a\\nb\\rc', 'a\nb\rc'],
    ['\\b\\f\\v', '\b\f\v'],
    ['\\101\\60\\0601', 'A001'], // octal: up to three digits
    ['\\x41\\x4\\x4g', 'A\x04\x04g'], // hex: one or two digits
    ['\\xg', 'xg'], // \x without a hex digit: the x itself
    ['\\q\\a\\\\', 'qa\\'], // any other byte: taken literally
    ['\\303\\251t\\xC3\\xA9', 'été'], // escaped UTF-8 bytes
    ['ünï😀', 'ünï😀'],
    ['', ''],
  ];
  for (const [raw, key] of cases) {
    const r = split(TEXT1, `x\t${raw}\n`);
    t.same(r.rows, [{ bytes: `x\t${raw}\n`, key }], JSON.stringify(raw));
    const last = split(TEXT1, `x\t${raw}`);
    t.same(last.rows.map((x) => x.key), [key], `${JSON.stringify(raw)} as a last line without newline`);
  }
  // A backslash before the newline escapes it; at the very end of the data it is dropped.
  t.same(split(TEXT1, 'x\tab\\\n').rows, [{ bytes: 'x\tab\\\n', key: 'ab\n' }]);
  t.same(split(TEXT1, 'x\tab\\').rows, [{ bytes: 'x\tab\\', key: 'ab' }]);
});

t.test('text: escaped delimiters and newlines stay inside their field', async (t) => {
  const data = 'a\\\tb\tkey1\tz\nline\\\nbreak\tkey2\n\\\\\tkey3\n';
  const r = sameAtEveryBoundary(t, TEXT1, data);
  t.same(r.rows, [
    { bytes: 'a\\\tb\tkey1\tz\n', key: 'key1' },
    { bytes: 'line\\\nbreak\tkey2\n', key: 'key2' },
    { bytes: '\\\\\tkey3\n', key: 'key3' },
  ]);
});

t.test('text: a hex escape may swallow a delimiter that is a hex digit', async (t) => {
  // DELIMITER 'B': `\x4B` is one escaped byte (K), the next B is the delimiter.
  const r = split({ format: 'text', delimiter: 'B', keyColumn: 1 }, '\\x4BBkey\n');
  t.same(r.rows, [{ bytes: '\\x4BBkey\n', key: 'key' }]);
});

t.test('text: custom NULL marker and delimiter', async (t) => {
  const opts: CopySplitOptions = { format: 'text', delimiter: '|', null: 'nil', keyColumn: 1 };
  const r = split(opts, 'a|nil\nb|\\N\nc|nilx\n');
  t.same(r.rows.map((x) => x.key), [null, 'N', 'nilx']);
  t.same(split({ format: 'text', null: '', keyColumn: 0 }, '\n\\N\n').rows.map((x) => x.key), [null, 'N']);
});

t.test('text: invalid UTF-8 and NUL in the key are refused as Postgres refuses them', async (t) => {
  throwsPg(t, () => split(TEXT0, '\\377\n'), '22021', /invalid byte sequence for encoding "UTF8": 0xff/);
  throwsPg(t, () => split(TEXT0, '\\000\n'), '22021', /0x00/);
  throwsPg(t, () => split(TEXT0, Buffer.from([0x61, 0xc3, 0x0a])), '22021', /0xc3/);
});

t.test('line endings: \\n, \\r\\n and \\r, detected from the first line', async (t) => {
  const crlf = sameAtEveryBoundary(t, TEXT0, '1\tx\r\n2\ty\r\n3');
  t.same(crlf.rows, [
    { bytes: '1\tx\r\n', key: '1' },
    { bytes: '2\ty\r\n', key: '2' },
    { bytes: '3', key: '3' },
  ]);
  const cr = sameAtEveryBoundary(t, TEXT0, '1\tx\r2\ty\r');
  t.same(cr.rows, [
    { bytes: '1\tx\r', key: '1' },
    { bytes: '2\ty\r', key: '2' },
  ]);
  t.same(split(TEXT0, '1\r').rows, [{ bytes: '1\r', key: '1' }], 'a bare \\r at the very end');
  const csv = sameAtEveryBoundary(t, CSV1, 'a,"multi\r\nline",b\r\nc,"2",d\r\n');
  t.same(csv.rows, [
    { bytes: 'a,"multi\r\nline",b\r\n', key: 'multi\r\nline' },
    { bytes: 'c,"2",d\r\n', key: '2' },
  ]);
});

t.test('line endings: a change of style is an error, as in Postgres', async (t) => {
  throwsPg(t, () => split(TEXT0, '1\n2\r\n'), '22P04', 'literal carriage return found in data');
  throwsPg(t, () => split(TEXT0, '1\r\n2\n'), '22P04', 'literal newline found in data');
  throwsPg(t, () => split(TEXT0, '1\r\n2\r3\r\n'), '22P04', 'literal carriage return found in data');
  throwsPg(t, () => split(TEXT0, '1\r2\n'), '22P04', 'literal newline found in data');
  throwsPg(t, () => split(CSV0, '1\n2\r\n'), '22P04', 'unquoted carriage return found in data');
  // Escaped, they are data.
  t.same(split(TEXT0, '1\\\r\n2\n').rows.map((x) => x.key), ['1\r', '2']);
});

t.test('text: the end-of-data marker', async (t) => {
  const r = sameAtEveryBoundary(t, TEXT0, '1\n2\n\\.\nignored\n');
  t.same(r.rows.map((x) => x.bytes), ['1\n', '2\n']);
  t.equal(r.marker, true);
  t.equal(split(TEXT0, '1\r\n\\.\r\n3\r\n').marker, true, 'with \\r\\n');
  t.equal(split(TEXT0, '1\r\\.\r3\r').rows.length, 1, 'with \\r');
  t.same(split(TEXT0, '\\.\n1\n'), { rows: [], header: null, marker: true }, 'as the first line');

  const s = new CopyRowSplitter(TEXT0);
  t.equal(s.push(Buffer.from('1\n\\.\n')).length, 1);
  t.same(s.push(Buffer.from('2\n')), [], 'data after the marker is ignored');
  t.same(s.end(), []);

  // An escaped backslash followed by a dot is data.
  t.same(split(TEXT0, '\\\\.\n').rows, [{ bytes: '\\\\.\n', key: '\\.' }]);
  throwsPg(t, () => split(TEXT0, 'a\\.\n'), '22P04', 'end-of-copy marker is not alone on its line');
  throwsPg(t, () => split(TEXT0, '\\.x\n'), '22P04', 'end-of-copy marker is not alone on its line');
  throwsPg(t, () => split(TEXT0, '1\n\\.'), '22P04', 'end-of-copy marker is not alone on its line');
  throwsPg(t, () => split(TEXT0, '1\r\n\\.\n'), '22P04', 'end-of-copy marker does not match previous newline style');
  throwsPg(t, () => split(TEXT0, '1\n\\.\r'), '22P04', 'end-of-copy marker does not match previous newline style');
});

t.test('csv: \\. has no special meaning (PostgreSQL 18)', async (t) => {
  const r = split(CSV0, '1\n\\.\n2\n');
  t.same(r.rows.map((x) => x.key), ['1', '\\.', '2']);
  t.equal(r.marker, false);
});

t.test('csv: quotes, doubled quotes, delimiters and newlines inside quotes', async (t) => {
  const data = 'x,"a,b"\n"y\ny",plain\nz,"say ""hi"""\nw,a"b,c"d\n';
  const r = sameAtEveryBoundary(t, CSV1, data);
  t.same(r.rows, [
    { bytes: 'x,"a,b"\n', key: 'a,b' },
    { bytes: '"y\ny",plain\n', key: 'plain' },
    { bytes: 'z,"say ""hi"""\n', key: 'say "hi"' },
    { bytes: 'w,a"b,c"d\n', key: 'ab,cd' }, // quotes may open mid-field
  ]);
});

t.test('csv: NULL is the unquoted empty field by default; a quoted empty field is an empty string', async (t) => {
  t.same(split(CSV1, 'a,\nb,""\nc,"",\n').rows.map((x) => x.key), [null, '', '']);
  const custom: CopySplitOptions = { format: 'csv', null: 'NULL', keyColumn: 0 };
  t.same(split(custom, 'NULL\n"NULL"\n\n').rows.map((x) => x.key), [null, 'NULL', '']);
});

t.test('csv: FORCE_NULL and FORCE_NOT_NULL on the key column', async (t) => {
  t.same(split({ ...CSV0, forceNull: true }, '""\n\nx\n').rows.map((x) => x.key), [null, null, 'x']);
  t.same(split({ ...CSV0, forceNotNull: true }, '""\n\n').rows.map((x) => x.key), ['', '']);
  const custom: CopySplitOptions = { format: 'csv', null: 'N', keyColumn: 0 };
  t.same(split({ ...custom, forceNotNull: true }, 'N\n').rows.map((x) => x.key), ['N']);
  t.same(split({ ...custom, forceNull: true }, '"N"\n').rows.map((x) => x.key), [null]);
});

t.test('csv: a separate escape character', async (t) => {
  const opts: CopySplitOptions = { format: 'csv', escape: '\\', keyColumn: 0 };
  const data = '"a\\"b",1\n"c\\\\",2\n"d\\x",3\nx\\y,4\n';
  const r = sameAtEveryBoundary(t, opts, data);
  t.same(r.rows.map((x) => x.key), ['a"b', 'c\\', 'd\\x', 'x\\y']);
  t.same(split({ format: 'csv', quote: "'", delimiter: ';', keyColumn: 1 }, "a;'x;y''z'\n").rows.map((x) => x.key), ["x;y'z"]);
});

t.test('csv: an unterminated quoted field is an error', async (t) => {
  throwsPg(t, () => split(CSV0, '"abc\n'), '22P04', 'unterminated CSV quoted field');
  throwsPg(t, () => split(CSV1, '1,2,"abc'), '22P04', 'unterminated CSV quoted field');
});

t.test('a row without the key field is an error; DEFAULT for the key is refused', async (t) => {
  throwsPg(t, () => split({ ...TEXT1, keyName: 'id' }, 'only\n'), '22P04', 'missing data for column "id"');
  throwsPg(t, () => split(CSV1, 'only\n'), '22P04', 'missing data for column 2');
  throwsPg(t, () => split({ ...TEXT1, default: '\\D' }, 'a\t\\D\n'), '0A000', /DEFAULT marker/);
  throwsPg(t, () => split({ ...CSV1, default: 'dflt' }, 'a,dflt\n'), '0A000', /DEFAULT marker/);
  t.same(split({ ...TEXT1, default: '\\D' }, '\\D\tk\n').rows.map((x) => x.key), ['k'], 'DEFAULT elsewhere is fine');
});

t.test('header: kept apart, once, in any chunking', async (t) => {
  for (const [opts, data] of [
    [{ ...CSV1, header: true }, 'id,name\r\n1,"a\r\nb"\r\n'],
    [{ ...TEXT1, header: 'match' }, 'id\tname\n1\t2\n'],
  ] as const) {
    const whole = sameAtEveryBoundary(t, opts, data);
    t.equal(whole.header, data.slice(0, data.indexOf('\n') + 1));
    t.equal(whole.rows.length, 1);
    for (const sizes of [[1], [2], [3, 1], [5]]) t.same(split(opts, data, sizes), whole, `chunks ${sizes.join(',')}`);
  }
  const s = new CopyRowSplitter({ ...CSV0, header: true });
  t.same(s.push(Buffer.from('h1,h')), []);
  t.equal(s.takeHeader(), null, 'not complete yet');
  t.same(s.push(Buffer.from('2\n7,x\n')).map((r) => r.key), ['7']);
  t.equal(s.takeHeader()?.toString(), 'h1,h2\n');
  t.equal(s.takeHeader(), null, 'taken once');
  t.same(split({ ...CSV0, header: true }, 'only header'), { rows: [], header: 'only header', marker: false });
});

t.test('rows spanning chunks are joined; rows inside a chunk are not copied', async (t) => {
  const s = new CopyRowSplitter(TEXT0);
  const chunk = Buffer.from('1\n2\n3');
  const rows = s.push(chunk);
  t.equal(rows[0]!.bytes.buffer, chunk.buffer, 'a view of the chunk');
  t.equal(s.pending, 1);
  const rest = [...s.push(Buffer.from('33\n')), ...s.end()];
  t.same(rest.map((r) => [r.bytes.toString(), r.key]), [['333\n', '333']]);
});

// ---------------------------------------------------------------------------------------------------------
// Property: rows written as Postgres's COPY TO writes them come back with their values, in any chunking.

/** As CopyAttributeOutText. */
function textField(v: string | null, delim: string): string {
  if (v === null) return '\\N';
  let out = '';
  for (const ch of v) {
    if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (ch === '\v') out += '\\v';
    else if (ch === delim) out += '\\' + ch;
    else out += ch;
  }
  return out;
}

/** As CopyAttributeOutCSV (quote when needed, or always). */
function csvField(v: string | null, delim: string, always: boolean): string {
  if (v === null) return '';
  const needs = always || v === '' || v.includes(delim) || v.includes('"') || v.includes('\n') || v.includes('\r') || v === '\\.';
  return needs ? `"${v.replaceAll('"', '""')}"` : v;
}

const value = fc.option(fc.oneof(fc.string({ unit: fc.constantFrom('a', 'Z', '1', ',', '|', '\t', '\n', '\r', '\\', '"', '.', 'N', ' ', 'é', '😀') }), fc.string()), { nil: null, freq: 5 });

t.test('property: any chunking gives the same rows, and keys round-trip', async (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom('text' as const, 'csv' as const),
      fc.constantFrom('\n', '\r\n', '\r'),
      fc.constantFrom(',', '|', '\t'),
      fc.boolean(),
      fc.array(fc.array(value, { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 0, max: 2 }),
      fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      (format, eol, delim, quoteAll, rows, keyColumn, sizes, finalEol) => {
        if (format === 'text' && delim === ',') delim = '\t';
        const lines = rows.map((r) => r.map((v) => (format === 'text' ? textField(v, delim) : csvField(v, delim, quoteAll))).join(delim));
        // A text line that is exactly `\.` would be the end marker; a one-column empty CSV line is NULL: fine either way,
        // but keep the property about plain rows.
        const data = lines.map((l, i) => l + (i < lines.length - 1 || finalEol ? eol : '')).join('');
        const opts: CopySplitOptions = { format, delimiter: delim, keyColumn };
        const whole = split(opts, data);
        const chunked = split(opts, data, sizes);
        const expectRows = lines.map((l, i) => l + (i < lines.length - 1 || finalEol ? eol : ''));
        const lastEmpty = !finalEol && expectRows[expectRows.length - 1] === '';
        const want = lastEmpty ? expectRows.slice(0, -1) : expectRows;
        const keys = rows.map((r) => (format === 'csv' && r[keyColumn] === '' && !quoteAll ? '' : r[keyColumn]!));
        return (
          JSON.stringify(chunked) === JSON.stringify(whole) &&
          JSON.stringify(whole.rows.map((r) => r.bytes)) === JSON.stringify(want) &&
          JSON.stringify(whole.rows.map((r) => r.key)) === JSON.stringify(keys.slice(0, want.length))
        );
      },
    ),
    { numRuns: 2000 },
  );
});

// ---------------------------------------------------------------------------------------------------------
// Options from the statement

function copyStmt(sql: string): CopyStmt {
  const s = parseSync(sql).stmts?.[0]?.stmt;
  if (s === undefined || !('CopyStmt' in s)) throw new Error(`not a COPY: ${sql}`);
  return s.CopyStmt;
}

t.test('copyOptionsFromAst: defaults and the key position', async (t) => {
  t.same(copyOptionsFromAst(copyStmt('COPY t FROM STDIN'), ['a', 'id', 'b'], 'id'), {
    format: 'text',
    delimiter: '\t',
    quote: '"',
    escape: '"',
    header: false,
    null: '\\N',
    forceNull: false,
    forceNotNull: false,
    keyColumn: 1,
    keyName: 'id',
  });
  const csv = copyOptionsFromAst(copyStmt('COPY t (b, "Id", id) FROM STDIN (FORMAT csv, HEADER)'), undefined, 'id');
  t.match(csv, { format: 'csv', delimiter: ',', quote: '"', escape: '"', header: true, null: '', keyColumn: 2 });
  t.match(copyOptionsFromAst(copyStmt('COPY t ("Id") FROM STDIN'), undefined, 'Id'), { keyColumn: 0, keyName: 'Id' });
  t.match(copyOptionsFromAst(copyStmt('COPY t (ID) FROM STDIN'), undefined, 'ID'), { keyColumn: 0, keyName: 'id' });
});

t.test('copyOptionsFromAst: every option that shapes rows or keys', async (t) => {
  const o = copyOptionsFromAst(
    copyStmt(`COPY t (a, k) FROM STDIN WITH (FORMAT csv, HEADER match, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'x', DEFAULT 'd', FORCE_NULL (k), FORCE_NOT_NULL (a), ENCODING 'UTF-8', FREEZE, ON_ERROR ignore)`),
    undefined,
    'k',
  );
  t.same(o, { format: 'csv', delimiter: ';', quote: "'", escape: '\\', header: 'match', null: 'x', default: 'd', forceNull: true, forceNotNull: false, keyColumn: 1, keyName: 'k' });
  t.match(copyOptionsFromAst(copyStmt('COPY t (k) FROM STDIN CSV FORCE NOT NULL k'), undefined, 'k'), { forceNotNull: true });
  t.match(copyOptionsFromAst(copyStmt('COPY t (k) FROM STDIN (FORMAT csv, FORCE_NULL *)'), undefined, 'k'), { forceNull: true });
  t.match(copyOptionsFromAst(copyStmt("COPY t (k) FROM STDIN WITH DELIMITER '|' NULL 'nil' CSV HEADER QUOTE AS '\"'"), undefined, 'k'), {
    format: 'csv',
    delimiter: '|',
    null: 'nil',
    header: true,
  });
  for (const [h, want] of [['0', false], ['1', true], ['on', true], ['off', false], ['true', true], ['false', false]] as const)
    t.match(copyOptionsFromAst(copyStmt(`COPY t (k) FROM STDIN (HEADER ${h})`), undefined, 'k'), { header: want }, `HEADER ${h}`);
});

t.test('copyOptionsFromAst: binary format', async (t) => {
  t.same(copyOptionsFromAst(copyStmt('COPY t (a, k) FROM STDIN (FORMAT binary)'), undefined, 'k'), {
    format: 'binary',
    keyColumn: 1,
    keyName: 'k',
    columnCount: 2,
    relation: { name: 't' },
  });
  t.same(copyOptionsFromAst(copyStmt('COPY "My".t FROM STDIN BINARY'), ['k', 'a', 'b'], 'k'), {
    format: 'binary',
    keyColumn: 0,
    keyName: 'k',
    columnCount: 3,
    relation: { schema: 'My', name: 't' },
  });
  // Options binary COPY refuses are the shards' to refuse (with Postgres's own error).
  t.match(copyOptionsFromAst(copyStmt("COPY t (k) FROM STDIN (FORMAT binary, DELIMITER '|')"), undefined, 'k'), { format: 'binary' });
  t.match(copyOptionsFromAst(copyStmt('COPY t FROM STDIN (FORMAT binary)'), undefined, 'k'), { error: /needs a column list/ });
});

t.test('copyOptionsFromAst: refusals', async (t) => {
  const err = (sql: string, cols?: string[]): unknown => copyOptionsFromAst(copyStmt(sql), cols, 'k');
  t.match(err('COPY t FROM STDIN'), { error: /needs a column list/ });
  t.match(err('COPY t FROM STDIN', ['a', 'b']), { error: /must include the shard key column "k"/ });
  t.match(err('COPY t (k) TO STDOUT'), { error: /not a COPY FROM/ });
  t.match(err("COPY t (k) FROM '/tmp/x'"), { error: /server-side file/ });
  t.match(err("COPY t (k) FROM STDIN (ENCODING 'LATIN1')"), { error: /ENCODING/ });
  t.match(err("COPY t (k) FROM STDIN (DELIMITER '||')"), { error: /single one-byte/ });
  t.match(err("COPY t (k) FROM STDIN (DELIMITER 'é')"), { error: /single one-byte/ });
  t.match(err("COPY t (k) FROM STDIN (DELIMITER 'a')"), { error: /cannot be "a"/ });
  t.match(err("COPY t (k) FROM STDIN (FORMAT csv, QUOTE ',')"), { error: /must be different/ });
  t.match(err("COPY t (k) FROM STDIN (QUOTE '\"')"), { error: /requires CSV mode/ });
  t.match(err('COPY t (k) FROM STDIN (HEADER 2)'), { error: /header/ });
  t.match(err("COPY t (k) FROM STDIN (FORMAT 'xml')"), { error: /not recognized/ });
});
