import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSecretsKey, openSecrets, sealSecrets } from '../src/channels/secrets.ts';
import { checkTemplateContent, pickLocale, renderFields, RenderError } from '../src/channels/templates.ts';

const context = { profile: { id: 'p1' }, traits: { first_name: 'Ada' }, event: { sku: 'A-1' }, journey: { coupon: 'SAVE10' }, message: { id: 'm1' } };

describe('template check', () => {
  it('reports a syntax error with its field and line:column', () => {
    const problems = checkTemplateContent('email', 'en', { en: { subject: 'Hi', html: 'Hello\n{{ traits.first_name | nofilter }}' } });
    expect(problems).toEqual([{ path: 'en.html 2:1', message: 'undefined filter: nofilter' }]);
  });

  it('requires the fields of the channel and a default locale that has content', () => {
    const problems = checkTemplateContent('email', 'fr', { en: { text: 'x' }, 'zh-CN': { subject: 's', html: 'h', colour: 'red' } });
    expect(problems.map((p) => p.path)).toEqual(['defaultLocale', 'en.subject', 'zh-CN.colour']);
    expect(checkTemplateContent('push', 'en', { en: { title: 't', body: 'b', 'data.deep_link': '/cart' } })).toEqual([]);
    expect(checkTemplateContent('sms', 'en', { en: { provider_template: 'SMS_1', 'param.code': '{{ journey.code }}' } })).toEqual([]);
  });

  it('at publish, event properties and journey variables must be declared; profile data always exists', () => {
    const content = { en: { text: '{{ traits.first_name }} {{ profile.email }} {{ event.sku }} {{ journey.coupon }} {{ message.unsubscribe_url }}' } };
    expect(checkTemplateContent('sms', 'en', content, { eventProperties: ['sku'], journeyVariables: ['coupon'] })).toEqual([]);
    const problems = checkTemplateContent('sms', 'en', content, { eventProperties: ['price'] });
    expect(problems.map((p) => p.message)).toEqual([
      '"event.sku" is not a property of the trigger event (available: price)',
      '"journey.coupon" is not a journey variable (available: none)',
    ]);
    expect(checkTemplateContent('sms', 'en', { en: { text: '{{ customer.name }}' } })[0]?.message).toMatch(/unknown variable "customer.name"/);
  });

  it('profile and message have fixed fields: a typo there is caught at save and publish, not at send', () => {
    const content = { en: { text: '{{ profile.first_name }} {{ profile.identifiers.wechat_openid }} {{ message.unsubscribe_link }}' } };
    const messages = (available?: { eventProperties: string[] }) => checkTemplateContent('sms', 'en', content, available).map((p) => p.message);
    const expected = [
      '"profile.first_name" is not a field of profile (id, email, phone, user_id, locale, identifiers); traits are under traits.',
      '"message.unsubscribe_link" is not a field of message (id, unsubscribe_url, preferences_url)',
    ];
    expect(messages()).toEqual(expected);
    expect(messages({ eventProperties: [] })).toEqual(expected);
  });

  it('variables assigned inside the template are not required from outside', () => {
    const content = { en: { text: '{% assign n = traits.first_name %}{% for item in event.items %}{{ item.name }}{% endfor %}{{ n }}' } };
    expect(checkTemplateContent('sms', 'en', content, { eventProperties: ['items'] })).toEqual([]);
  });
});

describe('rendering', () => {
  it('renders strictly: a missing variable is an error naming field and position, default filters still work', () => {
    expect(renderFields('t1', { text: 'Hi {{ traits.first_name }}, {{ traits.city | default: "friend" }}' }, context, 'en')).toEqual({ text: 'Hi Ada, friend' });
    expect(() => renderFields('t2', { subject: 'ok', text: 'Hi\n  {{ traits.last_name }}' }, context, 'en')).toThrow(RenderError);
    const error = (() => {
      try {
        renderFields('t3', { text: 'Hi\n  {{ traits.last_name }}' }, context, 'zh-CN');
      } catch (caught) {
        return caught as RenderError;
      }
      return undefined;
    })();
    expect(error?.path).toBe('zh-CN.text 2:6');
    expect(error?.message).toContain('undefined variable: traits.last_name');
  });

  it('chooses the profile locale, then the same language, then the default', () => {
    const content = { en: { text: 'a' }, 'zh-CN': { text: 'b' } };
    expect(pickLocale(content, 'en', 'zh-CN')).toBe('zh-CN');
    expect(pickLocale(content, 'en', 'zh_TW')).toBe('zh-CN');
    expect(pickLocale(content, 'en', 'en-GB')).toBe('en');
    expect(pickLocale(content, 'en', 'fr')).toBe('en');
    expect(pickLocale(content, 'en', undefined)).toBe('en');
  });
});

describe('secrets', () => {
  it('seals with AES-GCM and opens only with the same key', () => {
    const key = crypto.randomBytes(32);
    const sealed = sealSecrets(key, { authToken: 'tok-123' });
    expect(sealed).not.toContain('tok-123');
    expect(openSecrets(key, sealed)).toEqual({ authToken: 'tok-123' });
    expect(() => openSecrets(crypto.randomBytes(32), sealed)).toThrow(/cannot be opened/);
  });

  it('reads the key from the environment or a file, else generates <data dir>/secrets.key once', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tp-secrets-'));
    try {
      const hex = crypto.randomBytes(32).toString('hex');
      expect(loadSecretsKey({ TOUCHPOINT_SECRETS_KEY: hex }, dir).toString('hex')).toBe(hex);
      const file = path.join(dir, 'given.key');
      fs.writeFileSync(file, Buffer.from(hex, 'hex').toString('base64'));
      expect(loadSecretsKey({ TOUCHPOINT_SECRETS_KEY_FILE: file }, dir).toString('hex')).toBe(hex);
      const generated = loadSecretsKey({}, dir);
      expect(generated).toHaveLength(32);
      expect(fs.statSync(path.join(dir, 'secrets.key')).mode & 0o777).toBe(0o600);
      expect(loadSecretsKey({}, dir).equals(generated)).toBe(true);
      expect(() => loadSecretsKey({ TOUCHPOINT_SECRETS_KEY: 'short' }, dir)).toThrow(/32 bytes/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
