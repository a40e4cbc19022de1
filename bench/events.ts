/**
 * Deterministic Segment-shaped events of a retail web shop (analytics.js style): the same
 * (runTag, batchIndex) always gives the same events, so the HTTP client and the bare-insert
 * baseline store identical data. Only the times follow the clock.
 */

export interface BenchEvent {
  type: 'track' | 'identify' | 'page';
  messageId: string;
  userId?: string;
  anonymousId: string;
  event?: string;
  name?: string;
  category?: string;
  properties?: Record<string, unknown>;
  traits?: Record<string, unknown>;
  context: Record<string, unknown>;
  timestamp: string;
  sentAt: string;
}

const USERS = 50_000;
// Share of users who have signed in (send userId); the rest are anonymous visitors.
const IDENTIFIED_SHARE = 0.6;

const PRODUCTS = [
  ['Trail Runner 2', 'Footwear', 'Acme', 89.99],
  ['Merino Base Layer', 'Apparel', 'Northwind', 54.5],
  ['Down Jacket 700', 'Apparel', 'Northwind', 219],
  ['Hydration Pack 12L', 'Bags', 'Acme', 74.95],
  ['Carbon Trekking Poles', 'Equipment', 'Summit', 129],
  ['Waterproof Overtrousers', 'Apparel', 'Acme', 99],
  ['Camp Stove Mini', 'Equipment', 'Fireside', 39.99],
  ['Insulated Bottle 750ml', 'Accessories', 'Summit', 24],
] as const;

const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0',
];
const REFERRERS = ['https://www.google.com/', '', '', 'https://www.instagram.com/', 'https://acme.shop/'];
const LOCALES = ['en-GB', 'en-US', 'de-DE', 'fr-FR'];
const SEARCHES = ['running shoes', 'rain jacket', 'stove', 'merino', 'poles'];

/** mulberry32: tiny, fast, good enough to vary the data reproducibly. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}

// analytics.js ids look like `ajs-next-<32 hex>` (random). Ours lead with a scrambled batch number,
// so batches land all over the messageId index as random ids do, and carry the run and item so
// they are unique by construction (the run tag keeps repeated runs on one database apart).
const BATCH_TOKEN = '{{batch}}';

export function benchMessageId(runTag: string, batch: string, item: number): string {
  return `ajs-next-${batch}${runTag}${hex(item, 4)}000000000000`;
}

function anonymousIdOf(user: number): string {
  const n = hex(Math.imul(user + 1, 2654435761) >>> 0, 8);
  return `${n}-${hex(user, 4).slice(-4)}-4a1e-9c3d-${hex(user, 12)}`;
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-');
}

/**
 * `size` events from template `templateIndex`, with `batch` in their messageIds. Templates keep the
 * load generator cheap (see createBatchSource); 256 of them × 100 events make 25,600 distinct
 * payloads over 50,000 users.
 */
export function generateEvents(runTag: string, templateIndex: number, batch: string, size: number, nowMs = Date.now()): BenchEvent[] {
  const rand = random(templateIndex + 1);
  const sentAt = new Date(nowMs).toISOString();
  const events: BenchEvent[] = [];
  for (let item = 0; item < size; item++) {
    const user = Math.floor(rand() * USERS);
    const identified = user < USERS * IDENTIFIED_SHARE;
    const [productName, productCategory, brand, price] = pick(rand, PRODUCTS);
    const sku = `sku-${1000 + PRODUCTS.findIndex((p) => p[0] === productName)}`;
    const path = `/p/${slug(productName)}`;
    const referrer = pick(rand, REFERRERS);
    const context: Record<string, unknown> = {
      library: { name: 'analytics.js', version: 'next-1.72.0' },
      page: {
        path,
        referrer,
        title: `${productName} | Acme`,
        url: `https://acme.shop${path}`,
      },
      userAgent: pick(rand, USER_AGENTS),
      locale: pick(rand, LOCALES),
      ip: `203.0.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`,
    };
    const base = {
      messageId: benchMessageId(runTag, batch, item),
      anonymousId: anonymousIdOf(user),
      ...(identified ? { userId: `user-${String(user).padStart(6, '0')}` } : {}),
      context,
      // The SDK queued the event up to a few seconds before sending the batch.
      timestamp: new Date(nowMs - Math.floor(rand() * 5_000)).toISOString(),
      sentAt,
    };
    const roll = rand();
    if (roll < 0.3) {
      events.push({
        ...base,
        type: 'page',
        name: 'Product',
        category: 'Shop',
        properties: { path, url: `https://acme.shop${path}`, title: `${productName} | Acme` },
      });
    } else if (roll < 0.38 && identified) {
      events.push({
        ...base,
        type: 'identify',
        traits: {
          email: `customer${user}@example.com`,
          firstName: pick(rand, ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Ken']),
          lastName: pick(rand, ['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Thompson']),
          loyaltyTier: pick(rand, ['bronze', 'silver', 'gold']),
          marketingOptIn: rand() < 0.4,
        },
      });
    } else {
      const kind = rand();
      const product = { product_id: sku, name: productName, category: productCategory, brand, price, currency: 'GBP' };
      if (kind < 0.5) events.push({ ...base, type: 'track', event: 'Product Viewed', properties: product });
      else if (kind < 0.75) events.push({ ...base, type: 'track', event: 'Product Added', properties: { ...product, quantity: 1 + Math.floor(rand() * 3) } });
      else if (kind < 0.9) events.push({ ...base, type: 'track', event: 'Products Searched', properties: { query: pick(rand, SEARCHES) } });
      else {
        const quantity = 1 + Math.floor(rand() * 2);
        events.push({
          ...base,
          type: 'track',
          event: 'Order Completed',
          properties: {
            order_id: `ord-${templateIndex}-${item}`,
            total: Math.round(price * quantity * 100) / 100,
            currency: 'GBP',
            products: [{ product_id: sku, name: productName, price, quantity }],
          },
        });
      }
    }
  }
  return events;
}

export const TEMPLATES = 256;

/** A bijection of 32-bit batch numbers (odd multiplier), so the hex is unique but scattered. */
export function batchHex(batchIndex: number): string {
  return hex(Math.imul(batchIndex, 0x9e3779b1) >>> 0, 8);
}

/**
 * Batches for a run: batch `i` has the payloads of template `i % TEMPLATES` and messageIds unique to
 * `i`. Building 100 fresh events costs ~0.8 ms of CPU; on a 2-core machine shared with the server
 * that would be charged to the server, so bodies are cached as JSON text and only the ids change.
 */
export function createBatchSource(runTag: string, size: number, nowMs = Date.now()) {
  const bodies = new Map<number, string>();
  const events = new Map<number, BenchEvent[]>();
  const templateOf = (batchIndex: number) => batchIndex % TEMPLATES;
  return {
    /** The request body of `POST /v1/batch` for batch `batchIndex`. */
    body(batchIndex: number): string {
      const template = templateOf(batchIndex);
      let text = bodies.get(template);
      if (text === undefined) {
        text = JSON.stringify({ batch: generateEvents(runTag, template, BATCH_TOKEN, size, nowMs) });
        bodies.set(template, text);
      }
      return text.replaceAll(BATCH_TOKEN, batchHex(batchIndex));
    },
    /** The same events as objects (for the driver baseline). */
    events(batchIndex: number): BenchEvent[] {
      const template = templateOf(batchIndex);
      let list = events.get(template);
      if (!list) {
        list = generateEvents(runTag, template, BATCH_TOKEN, size, nowMs);
        events.set(template, list);
      }
      const batch = batchHex(batchIndex);
      return list.map((event, item) => ({ ...event, messageId: benchMessageId(runTag, batch, item) }));
    },
  };
}
