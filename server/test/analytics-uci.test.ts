import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import { parse } from 'csv-parse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instantOfLocal } from '../src/analytics/definition.ts';
import { createSource } from '../src/workspaces/store.ts';
import { analyticsCaller, insertResolvedEvents, setTimeZone, type RawEvent } from './analytics-support.ts';
import { serverKey } from './profiles-support.ts';
import { startTestApp, type TestApp } from './support/app.ts';

/*
 * Cross-check on real data: the UCI Online Retail file (541,909 invoice lines) imported as one
 * `Order Completed` per invoice (the usual clean-up: a customer id, not a cancellation, quantity
 * > 0), in a workspace on shop time (Europe/London). Monthly unique customers, revenue per month
 * and 3-month retention by first-purchase month from the API must equal a plain computation over
 * the CSV text here, which reads months straight from the invoice date strings.
 */
const FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/data/uci-online-retail/online_retail.csv.gz');

interface Invoice {
  customer: string;
  local: string; // YYYY-MM-DD HH:MM:SS, shop time
  cents: number;
}

async function readInvoices(): Promise<Map<string, Invoice>> {
  const invoices = new Map<string, Invoice>();
  const parser = fs.createReadStream(FILE).pipe(zlib.createGunzip()).pipe(parse({ columns: true }));
  for await (const row of parser as AsyncIterable<Record<string, string>>) {
    if (!row.CustomerID || row.InvoiceNo!.startsWith('C') || Number(row.Quantity) <= 0) continue;
    const invoice = invoices.get(row.InvoiceNo!) ?? { customer: row.CustomerID, local: row.InvoiceDate!, cents: 0 };
    invoice.cents += Math.round(Number(row.Quantity) * Number(row.UnitPrice) * 100);
    invoices.set(row.InvoiceNo!, invoice);
  }
  return invoices;
}

const monthOf = (local: string) => local.slice(0, 7);
const addMonths = (month: string, k: number) => {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const index = y * 12 + (m - 1) + k;
  return `${Math.floor(index / 12)}-${String((index % 12) + 1).padStart(2, '0')}`;
};

describe.skipIf(!fs.existsSync(FILE))('UCI Online Retail cross-check', () => {
  let t: TestApp;
  let post: ReturnType<typeof analyticsCaller>;
  let invoices: Map<string, Invoice>;

  beforeAll(async () => {
    t = await startTestApp();
    await setTimeZone(t, 'Europe/London');
    post = analyticsCaller(t, await serverKey(t));
    invoices = await readInvoices();
    const profiles = new Map<string, string>();
    const events: RawEvent[] = [...invoices.values()].map((invoice) => {
      if (!profiles.has(invoice.customer)) profiles.set(invoice.customer, crypto.randomUUID());
      const [date, time] = invoice.local.split(' ') as [string, string];
      const [year, month, day] = date.split('-').map(Number) as [number, number, number];
      const [hour, minute] = time.split(':').map(Number) as [number, number];
      return {
        profileId: profiles.get(invoice.customer)!,
        event: 'Order Completed',
        at: instantOfLocal({ year, month, day, hour, minute }, 'Europe/London'),
        properties: { revenue: invoice.cents / 100 },
      };
    });
    const source = await createSource(t.db, t.workspace.id, { name: 'ERP', kind: 'warehouse' });
    await insertResolvedEvents(t.db, t.workspace.id, source.source.id, events);
  }, 300_000);
  afterAll(async () => t?.close());

  const range = { from: '2010-12-01', to: '2011-12-09' };

  it('has the documented shape after clean-up', () => {
    expect(invoices.size).toBe(18_536);
    expect(new Set([...invoices.values()].map((i) => i.customer)).size).toBe(4_339);
  });

  it('monthly unique customers and revenue equal the computation over the CSV', async () => {
    const customers = new Map<string, Set<string>>();
    const revenue = new Map<string, number>();
    for (const invoice of invoices.values()) {
      const month = monthOf(invoice.local);
      customers.set(month, (customers.get(month) ?? new Set()).add(invoice.customer));
      revenue.set(month, (revenue.get(month) ?? 0) + invoice.cents);
    }
    const months = [...customers.keys()].sort();
    const result = await post('/v1/analytics/trends', {
      range,
      interval: 'month',
      series: [
        { event: { event: 'Order Completed' }, measure: 'unique' },
        { event: { event: 'Order Completed' }, measure: 'sum', property: 'revenue' },
      ],
    });
    expect(result.periods).toEqual(months.map((m) => `${m}-01`));
    expect(result.series[0].values).toEqual(months.map((m) => customers.get(m)!.size));
    result.series[1].values.forEach((value: number, index: number) => expect(value).toBeCloseTo(revenue.get(months[index]!)! / 100, 4));
    expect(result.series[0].total).toBe(4_339);
  });

  it('3-month retention by first-purchase month equals the computation over the CSV', async () => {
    const first = new Map<string, string>();
    const active = new Map<string, Set<string>>();
    for (const invoice of invoices.values()) {
      const month = monthOf(invoice.local);
      if (!first.has(invoice.customer) || month < first.get(invoice.customer)!) first.set(invoice.customer, month);
      active.set(month, (active.get(month) ?? new Set()).add(invoice.customer));
    }
    const cohorts = new Map<string, { size: number; retained: number }>();
    for (const [customer, month] of first) {
      const cohort = cohorts.get(month) ?? { size: 0, retained: 0 };
      cohort.size += 1;
      if (active.get(addMonths(month, 3))?.has(customer)) cohort.retained += 1;
      cohorts.set(month, cohort);
    }
    const result = await post('/v1/analytics/retention', {
      range,
      startEvent: { event: 'Order Completed' },
      returnEvent: { event: 'Order Completed' },
      interval: 'month',
      periods: 3,
    });
    const got = result.cohorts.map((c: { cohort: string; size: number; retained: number[] }) => [c.cohort.slice(0, 7), c.size, c.retained[3]]);
    const expected = [...cohorts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([month, c]) => [month, c.size, c.retained]);
    expect(got).toEqual(expected);
    expect(expected[0]![1]).toBeGreaterThan(800); // December 2010, the biggest cohort
  });
});
