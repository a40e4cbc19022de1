import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ImportError } from '../src/ingest/import/errors.ts';
import { parseMappings } from '../src/ingest/import/mapping.ts';
import { rowMessageId } from '../src/ingest/import/message-id.ts';
import { createProgressReporter, estimateRemainingMs, formatProgressLine } from '../src/ingest/import/progress.ts';
import { lineBreaks, readCsv, type CsvItem } from '../src/ingest/import/read.ts';
import { planImport } from '../src/ingest/import/run.ts';
import { createCsvRowConverter, createJsonRowConverter, type RowOptions } from '../src/ingest/import/row-event.ts';
import { createDateParser, parseDateTime, zonedTimeToInstant } from '../src/ingest/import/time.ts';
import { createConverter, multiply } from '../src/ingest/import/values.ts';

const SOURCE = '7f1d4c2e-0000-4000-8000-000000000001';

function rowOptions(overrides: Partial<RowOptions> = {}): RowOptions {
  return { type: 'track', event: 'Order Completed', mappings: [], onlyMapped: false, timeZone: 'UTC', sourceId: SOURCE, ...overrides };
}

function importError(run: () => unknown): ImportError {
  try {
    run();
  } catch (error) {
    if (error instanceof ImportError) return error;
    throw error;
  }
  throw new Error('expected an ImportError');
}

describe('parseMappings', () => {
  it('reads targets, columns, types and products across several --map values', () => {
    const mappings = parseMappings(['userId=CustomerID, timestamp=InvoiceDate', 'properties.revenue=Quantity*UnitPrice:number,traits.address.city=City']);
    expect(mappings).toEqual([
      { target: 'userId', root: 'userId', path: [], columns: ['CustomerID'], type: undefined },
      { target: 'timestamp', root: 'timestamp', path: [], columns: ['InvoiceDate'], type: 'date' },
      { target: 'properties.revenue', root: 'properties', path: ['revenue'], columns: ['Quantity', 'UnitPrice'], type: 'number' },
      { target: 'traits.address.city', root: 'traits', path: ['address', 'city'], columns: ['City'], type: undefined },
    ]);
  });

  it('keeps spaces inside column names', () => {
    expect(parseMappings(['traits.name=Full Name:string'])[0]).toMatchObject({ columns: ['Full Name'], type: 'string' });
  });

  it.each([
    ['userId', /target=Column/],
    ['email=Email', /Unknown target "email"/],
    ['traits=Email', /needs a dot path/],
    ['traits..x=Email', /needs a dot path/],
    ['traits.__proto__=Email', /reserved key/],
    ['traits.age=Age:float', /Unknown type "float"/],
    ['traits.age=', /Missing column/],
    ['properties.total=A*:number', /Missing column/],
    ['properties.total=A*B:date', /number or integer/],
    ['userId=A*B', /only traits, properties and context/],
    ['timestamp=Day:number', /always a date/],
    ['userId=Id:integer', /always a string/],
    ['traits.a=X,traits.a=Y', /mapped twice/],
    ['traits.a=X,traits.a.b=Y', /overlap/],
  ])('refuses %s', (spec, message) => {
    const error = importError(() => parseMappings([spec]));
    expect(error.code).toBe('invalid_mapping');
    expect(error.field).toBe('--map');
    expect(error.message).toMatch(message);
  });
});

describe('value conversion', () => {
  const convert = createConverter('UTC');

  it('converts numbers, integers and booleans, and names what is wrong', () => {
    expect(convert(' 2.55 ', 'number')).toEqual({ ok: true, value: 2.55 });
    expect(convert('-1e3', 'number')).toEqual({ ok: true, value: -1000 });
    expect(convert('12', 'integer')).toEqual({ ok: true, value: 12 });
    expect(convert('Yes', 'boolean')).toEqual({ ok: true, value: true });
    expect(convert('0', 'boolean')).toEqual({ ok: true, value: false });
    expect(convert(7, 'string')).toEqual({ ok: true, value: '7' });
    expect(convert('abc', 'number')).toMatchObject({ ok: false, reason: 'invalid_number', problem: '"abc" is not a number' });
    for (const bad of ['0x1F', 'Infinity', ' ', '1,5', '1e999']) expect(convert(bad, 'number')).toMatchObject({ ok: false, reason: 'invalid_number' });
    expect(convert('1.5', 'integer')).toMatchObject({ ok: false, reason: 'invalid_integer' });
    expect(convert('maybe', 'boolean')).toMatchObject({ ok: false, reason: 'invalid_boolean' });
    expect(convert({ a: 1 }, 'string')).toMatchObject({ ok: false, reason: 'invalid_string' });
    expect(convert('2011-02-30', 'date')).toMatchObject({ ok: false, reason: 'invalid_date' });
    expect(convert('kept as read', undefined)).toEqual({ ok: true, value: 'kept as read' });
  });

  it('multiplies without binary floating-point noise', () => {
    expect(6 * 2.55).not.toBe(15.3);
    expect(multiply([6, 2.55])).toBe(15.3);
    expect(multiply([-12, 0.29])).toBe(-3.48);
    expect(multiply([0, -1])).toBe(0);
  });
});

describe('date-times', () => {
  it('reads naive times in the given zone, across daylight saving time', () => {
    expect(parseDateTime('2010-12-01 08:26:00', 'Europe/London')?.toISOString()).toBe('2010-12-01T08:26:00.000Z');
    expect(parseDateTime('2011-06-01 08:26', 'Europe/London')?.toISOString()).toBe('2011-06-01T07:26:00.000Z');
    expect(parseDateTime('2011-06-01T08:26:00', 'America/New_York')?.toISOString()).toBe('2011-06-01T12:26:00.000Z');
    expect(parseDateTime('2011-01-15', 'Asia/Shanghai')?.toISOString()).toBe('2011-01-14T16:00:00.000Z');
    expect(parseDateTime('2011-06-01 08:26:00.5', 'UTC')?.toISOString()).toBe('2011-06-01T08:26:00.500Z');
  });

  it('takes an explicit offset as given, whatever the zone', () => {
    expect(parseDateTime('2011-06-01T08:26:00Z', 'Europe/London')?.toISOString()).toBe('2011-06-01T08:26:00.000Z');
    expect(parseDateTime('2011-06-01 08:26:00+0800', 'Europe/London')?.toISOString()).toBe('2011-06-01T00:26:00.000Z');
    expect(parseDateTime('2011-06-01T08:26:00-05:30', 'UTC')?.toISOString()).toBe('2011-06-01T13:56:00.000Z');
  });

  it('resolves local times skipped or repeated by a DST change', () => {
    // London skipped 01:00–02:00 on 2011-03-27 and repeated 01:00–02:00 on 2011-10-30.
    expect(parseDateTime('2011-03-27 01:30', 'Europe/London')?.toISOString()).toBe('2011-03-27T01:30:00.000Z');
    expect(parseDateTime('2011-10-30 01:30', 'Europe/London')?.toISOString()).toBe('2011-10-30T00:30:00.000Z');
  });

  it('finds, for every half hour of a year, an instant whose wall clock shows that time', () => {
    const wallClock = (zone: string) => {
      const format = new Intl.DateTimeFormat('en-CA', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
      return (instant: Date) => format.format(instant).replace(', ', ' ');
    };
    // Lord Howe Island moves its clocks by half an hour.
    for (const zone of ['Europe/London', 'Australia/Lord_Howe']) {
      const wall = wallClock(zone);
      let gaps = 0;
      for (let local = Date.UTC(2011, 0, 1); local < Date.UTC(2012, 0, 1); local += 30 * 60_000) {
        const text = new Date(local).toISOString().slice(0, 16).replace('T', ' ');
        const instant = zonedTimeToInstant(local, zone);
        // A time inside a DST gap shows on no clock; it lands just after the jump.
        if (wall(new Date(instant)) !== text) {
          gaps++;
          expect(wall(new Date(instant)) > text, `${zone} ${text}`).toBe(true);
        }
      }
      expect(gaps, zone).toBeLessThanOrEqual(2);
    }
  });

  it('refuses impossible or unknown formats', () => {
    for (const bad of ['2011-02-29', '2011-13-01', '2011-01-01 24:00', '2011-01-01 10:60', '01/12/2010 08:26', '2011-1-1', 'soon']) {
      expect(parseDateTime(bad, 'UTC'), bad).toBeNull();
    }
    expect(parseDateTime('2012-02-29', 'UTC')?.toISOString()).toBe('2012-02-29T00:00:00.000Z');
  });

  it('answers repeated values from its memo with equal results', () => {
    const parse = createDateParser('Europe/London', 2);
    const values = ['2011-06-01 10:00', '2011-06-02 10:00', '2011-06-01 10:00', '2011-06-03 10:00', '2011-06-01 10:00'];
    expect(values.map((value) => parse(value)?.toISOString())).toEqual(values.map((value) => parseDateTime(value, 'Europe/London')?.toISOString()));
  });
});

describe('readCsv', () => {
  async function read(text: string, chunkSize = 5): Promise<CsvItem[]> {
    // Small chunks: records and line breaks split across reads must not matter.
    const chunks = [];
    for (let i = 0; i < text.length; i += chunkSize) chunks.push(Buffer.from(text.slice(i, i + chunkSize)));
    const items: CsvItem[] = [];
    for await (const array of readCsv(Readable.from(chunks))) items.push(...array);
    return items;
  }

  it('gives each record the physical line it starts on, across CRLF, blank lines and quoted line breaks', async () => {
    const items = await read('\uFEFFa,b\r\n1,2\r\n\r\n"x\r\ny",3\r\n"p\nq\rr",4\r\n5,6');
    expect(items).toEqual([
      { kind: 'header', line: 1, fields: ['a', 'b'] },
      { kind: 'row', line: 2, fields: ['1', '2'] },
      { kind: 'row', line: 4, fields: ['x\r\ny', '3'] },
      { kind: 'row', line: 6, fields: ['p\nq\rr', '4'] },
      { kind: 'row', line: 9, fields: ['5', '6'] },
    ]);
    expect(lineBreaks(['p\nq\rr', 'x\r\ny'])).toBe(3);
  });

  it('hands back a quote never closed, in file order, with the text it swallowed', async () => {
    const items = await read('a,b\n1,2\n3,"open\n4,5\n');
    expect(items).toEqual([
      { kind: 'header', line: 1, fields: ['a', 'b'] },
      { kind: 'row', line: 2, fields: ['1', '2'] },
      { kind: 'malformed', line: 3, message: expect.stringContaining('Quote Not Closed'), raw: '3,"open\n4,5\n' },
    ]);
  });
});

describe('rowMessageId', () => {
  it('is stable for the same source, line and row, and differs when any of them differs', () => {
    const id = rowMessageId(SOURCE, 2, '["a","b"]');
    expect(id).toBe(rowMessageId(SOURCE, 2, '["a","b"]'));
    expect(id).toMatch(/^import-[0-9a-f]{40}$/);
    expect(rowMessageId(SOURCE, 3, '["a","b"]')).not.toBe(id);
    expect(rowMessageId(SOURCE, 2, '["a","c"]')).not.toBe(id);
    expect(rowMessageId('another-source', 2, '["a","b"]')).not.toBe(id);
  });
});

describe('CSV rows to events', () => {
  const header = ['InvoiceNo', 'StockCode', 'Quantity', 'InvoiceDate', 'UnitPrice', 'CustomerID', 'Country'];
  const row = ['536365', '85123A', '6', '2011-06-01 08:26:00', '2.55', '17850', 'United Kingdom'];

  it('maps columns with types, multiplies products and puts unmapped columns into properties', () => {
    // UnitPrice feeds the revenue product, so it counts as mapped; Country, InvoiceNo, StockCode do not.
    const convert = createCsvRowConverter(header, rowOptions({
      timeZone: 'Europe/London',
      mappings: parseMappings(['userId=CustomerID,timestamp=InvoiceDate,properties.quantity=Quantity:integer,properties.revenue=Quantity*UnitPrice']),
    }));
    const result = convert(row, 2);
    expect(result).toEqual({
      ok: true,
      event: {
        type: 'track',
        event: 'Order Completed',
        userId: '17850',
        timestamp: '2011-06-01T07:26:00.000Z',
        properties: { InvoiceNo: '536365', StockCode: '85123A', Country: 'United Kingdom', quantity: 6, revenue: 15.3 },
        messageId: rowMessageId(SOURCE, 2, JSON.stringify(row)),
      },
    });
  });

  it('puts unmapped columns into traits for identify rows and leaves them out with onlyMapped', () => {
    const identify = createCsvRowConverter(['id', 'email', 'plan'], rowOptions({ type: 'identify', event: undefined, mappings: parseMappings(['userId=id']) }));
    expect(identify(['u1', 'a@example.com', ''], 5)).toMatchObject({ ok: true, event: { type: 'identify', userId: 'u1', traits: { email: 'a@example.com' } } });
    const only = createCsvRowConverter(['id', 'email'], rowOptions({ type: 'identify', event: undefined, onlyMapped: true, mappings: parseMappings(['userId=id']) }));
    const result = only(['u1', 'a@example.com'], 5);
    expect(result.ok && result.event.traits).toBeUndefined();
  });

  it('takes a mapped messageId and event column', () => {
    const convert = createCsvRowConverter(['id', 'what', 'user'], rowOptions({ event: undefined, mappings: parseMappings(['messageId=id,event=what,userId=user']) }));
    expect(convert(['m-1', 'Signed Up', 'u1'], 2)).toMatchObject({ ok: true, event: { messageId: 'm-1', event: 'Signed Up', userId: 'u1' } });
  });

  it('rejects bad values with the target, the column and the value', () => {
    const convert = createCsvRowConverter(header, rowOptions({ mappings: parseMappings(['properties.quantity=Quantity:integer,properties.revenue=Quantity*UnitPrice']) }));
    expect(convert(['1', 'x', '6.5', '', '2', 'u', 'UK'], 9)).toEqual({
      ok: false,
      reason: 'invalid_integer',
      field: 'properties.quantity',
      message: 'Column Quantity: "6.5" is not an integer (mapped to properties.quantity)',
    });
    const product = createCsvRowConverter(header, rowOptions({ mappings: parseMappings(['properties.revenue=Quantity*UnitPrice']) }));
    expect(product(['1', 'x', '6', '', 'two', 'u', 'UK'], 9)).toMatchObject({ ok: false, reason: 'invalid_number', field: 'properties.revenue', message: expect.stringContaining('UnitPrice') });
    expect(product(['1', 'x', '6'], 9)).toMatchObject({ ok: false, reason: 'column_count', message: 'The row has 3 fields; the header has 7' });
  });

  it('leaves empty cells out instead of storing empty strings', () => {
    const convert = createCsvRowConverter(header, rowOptions({ mappings: parseMappings(['userId=CustomerID,properties.revenue=Quantity*UnitPrice']) }));
    const result = convert(['1', '', '6', '', '', '', 'UK'], 3);
    expect(result).toMatchObject({ ok: true });
    expect(result.ok && result.event).not.toHaveProperty('userId');
    expect(result.ok && result.event.properties).toEqual({ InvoiceNo: '1', Country: 'UK' });
  });

  it('checks the mapping against the header before any row', () => {
    expect(importError(() => createCsvRowConverter(header, rowOptions({ mappings: parseMappings(['userId=Customer']) }))).message).toMatch(
      /Column "Customer" is not in the file's header \(InvoiceNo, StockCode/,
    );
    expect(importError(() => createCsvRowConverter(['id', 'id'], rowOptions({ mappings: parseMappings(['userId=id']) }))).code).toBe('ambiguous_column');
    expect(importError(() => createCsvRowConverter(['id', 'price', 'cost'], rowOptions({ mappings: parseMappings(['userId=id,properties.price=cost']) }))).code).toBe('column_conflict');
  });

  it('keeps a column named __proto__ as data, not as a prototype', () => {
    const convert = createCsvRowConverter(['id', '__proto__'], rowOptions({ mappings: parseMappings(['userId=id']) }));
    const result = convert(['u1', 'x'], 2);
    const properties = result.ok ? (result.event.properties as Record<string, unknown>) : {};
    expect(Object.getPrototypeOf(properties)).toBe(Object.prototype);
    expect(Object.hasOwn(properties, '__proto__')).toBe(true);
    expect(JSON.parse(JSON.stringify(properties))).toEqual(JSON.parse('{"__proto__":"x"}'));
  });
});

describe('NDJSON lines to events', () => {
  it('passes Segment events through, filling type, event, messageId and the zone of naive times', () => {
    const convert = createJsonRowConverter(rowOptions({ timeZone: 'Europe/London' }));
    const text = '{"userId":"u1","timestamp":"2011-06-01 10:00:00","properties":{"a":1}}';
    expect(convert(text, 4)).toEqual({
      ok: true,
      event: {
        type: 'track',
        event: 'Order Completed',
        userId: 'u1',
        timestamp: '2011-06-01T09:00:00.000Z',
        properties: { a: 1 },
        messageId: rowMessageId(SOURCE, 4, text),
      },
    });
    expect(convert('{"type":"page","name":"Home","anonymousId":"a","messageId":"m1"}', 1)).toMatchObject({
      ok: true,
      event: { type: 'page', name: 'Home', messageId: 'm1' },
    });
    expect(convert('{"userId":', 1)).toMatchObject({ ok: false, reason: 'invalid_json' });
    expect(convert('[1]', 1)).toMatchObject({ ok: false, reason: 'not_an_object' });
  });

  it('maps keys like CSV columns, reading dotted paths, with unmapped keys kept', () => {
    const convert = createJsonRowConverter(rowOptions({ type: 'identify', event: undefined, mappings: parseMappings(['userId=customer.id,traits.age=age:integer']) }));
    expect(convert('{"customer":{"id":42},"age":"31","vip":true}', 2)).toMatchObject({
      ok: true,
      event: { type: 'identify', userId: 42, traits: { age: 31, vip: true } },
    });
  });
});

describe('planImport', () => {
  const base = { file: 'orders.csv', writeKey: 'k' };

  it('derives the format from the name and applies defaults', () => {
    const plan = planImport({ ...base, type: 'track', event: 'Order Completed' });
    expect(plan).toMatchObject({ format: 'csv', batchSize: 1000, concurrency: 3, dryRun: false, rejectsFile: 'orders.csv.rejects.ndjson' });
    expect(planImport({ file: 'events.jsonl.gz', writeKey: 'k' }).format).toBe('ndjson');
    expect(planImport({ ...base, type: 'track', eventColumn: 'kind' }).row.mappings).toEqual([
      { target: 'event', root: 'event', path: [], columns: ['kind'], type: undefined },
    ]);
  });

  it.each([
    [{ file: 'data.txt' }, 'unknown_format', '--format'],
    [{ file: 'events.json' }, 'unknown_format', '--format'],
    [{ timeZone: 'Mars/Olympus' }, 'invalid_option', '--timezone'],
    [{}, 'invalid_option', '--type'],
    [{ type: 'track' as const }, 'invalid_option', '--event'],
    [{ type: 'identify' as const, event: 'X' }, 'invalid_option', '--event'],
    [{ type: 'track' as const, event: 'X', eventColumn: 'Y' }, 'invalid_option', '--event'],
    [{ type: 'track' as const, eventColumn: 'Y', map: ['event=Z'] }, 'invalid_option', '--event-column'],
    [{ type: 'track' as const, event: 'X', onlyMapped: true }, 'invalid_option', '--only-mapped'],
    [{ type: 'track' as const, event: 'X', batchSize: 0 }, 'invalid_option', '--batch-size'],
    [{ type: 'track' as const, event: 'X', concurrency: 100 }, 'invalid_option', '--concurrency'],
  ])('refuses %j', (request, code, field) => {
    const error = importError(() => planImport({ ...base, ...request }));
    expect({ code: error.code, field: error.field }).toEqual({ code, field });
  });
});

describe('progress', () => {
  const progress = { rowsRead: 250_000, stored: 200_000, duplicates: 0, rejected: 50_000, bytesRead: 2_500_000, totalBytes: 10_000_000, elapsedMs: 10_000 };

  it('shows share, rows, rate and an ETA from the bytes read', () => {
    expect(estimateRemainingMs(progress)).toBe(30_000);
    expect(formatProgressLine(progress)).toBe('[######------------------]  25%  250,000 rows  25,000 rows/s  ETA 0:30  (50,000 rejected)');
    expect(formatProgressLine({ ...progress, elapsedMs: 100 }, false)).toContain('ETA --:--');
  });

  it('redraws at most five times a second on a terminal and writes plain lines elsewhere', () => {
    const written: string[] = [];
    const tty = createProgressReporter({ isTTY: true, write: (text: string) => written.push(text) });
    for (let ms = 0; ms <= 1000; ms += 50) tty.update({ ...progress, elapsedMs: ms });
    expect(written).toHaveLength(6);
    expect(written[0]!.startsWith('\r[')).toBe(true);
    tty.finish();
    expect(written.at(-1)).toBe('\r\x1b[K');

    const plain: string[] = [];
    const log = createProgressReporter({ isTTY: false, write: (text: string) => plain.push(text) }, 10_000);
    for (let ms = 0; ms <= 30_000; ms += 1000) log.update({ ...progress, elapsedMs: ms });
    expect(plain).toHaveLength(4);
    expect(plain.every((line) => line.startsWith('import: ') && line.endsWith('\n') && !line.includes('['))).toBe(true);
  });
});
