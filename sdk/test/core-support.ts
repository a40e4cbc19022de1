import { memoryStorage, type BatchRequest, type KeyValueStorage, type Message, type SendResult, type Transport } from '../src/core/index.ts';

/** A transport that records every request and answers from a script (then 200s). */
export function scriptedTransport(answers: Array<SendResult | 'throw'> = []) {
  const requests: BatchRequest[] = [];
  const transport: Transport & { requests: BatchRequest[]; bodies: () => Array<{ batch: Message[]; sentAt: string; writeKey: string }> } = {
    requests,
    bodies: () => requests.map((request) => JSON.parse(request.body) as { batch: Message[]; sentAt: string; writeKey: string }),
    async send(request) {
      requests.push(request);
      const answer = answers.shift() ?? { ok: true, status: 200 };
      if (answer === 'throw') throw new Error('network down');
      return answer;
    },
  };
  return transport;
}

export function inspectableStorage(): KeyValueStorage & { dump: () => Record<string, string> } {
  const base = memoryStorage();
  const keys = new Set<string>();
  return {
    get: base.get,
    set: (key, value) => {
      keys.add(key);
      base.set(key, value);
    },
    remove: (key) => {
      keys.delete(key);
      base.remove(key);
    },
    dump: () => Object.fromEntries([...keys].map((key) => [key, base.get(key)!])),
  };
}
