import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { en, type MessageKey } from './en.ts';
import { zhCN } from './zh-CN.ts';

export const LOCALES = ['en', 'zh-CN'] as const;
export type Locale = (typeof LOCALES)[number];
export const LOCALE_NAMES: Record<Locale, string> = { en: 'English', 'zh-CN': '简体中文' };
const STORAGE_KEY = 'touchpoint.locale';
const MESSAGES: Record<Locale, Record<MessageKey, string>> = { en, 'zh-CN': zhCN };

export type { MessageKey };

/** The remembered choice, else the browser's language (any zh → zh-CN), else English. */
export function initialLocale(stored: string | null, browserLanguages: readonly string[]): Locale {
  if (stored && (LOCALES as readonly string[]).includes(stored)) return stored as Locale;
  return browserLanguages.some((language) => language.toLowerCase().startsWith('zh')) ? 'zh-CN' : 'en';
}

export function translate(locale: Locale, key: MessageKey, vars: Record<string, string | number> = {}): string {
  return MESSAGES[locale][key].replace(/\{(\w+)\}/g, (whole, name: string) => (name in vars ? String(vars[name]) : whole));
}

/** Formatting by the chosen locale: numbers, percentages, money, dates and times via Intl. */
export function formatters(locale: Locale) {
  const integer = new Intl.NumberFormat(locale);
  const percent = new Intl.NumberFormat(locale, { style: 'percent', maximumFractionDigits: 1 });
  const compact = new Intl.NumberFormat(locale, { notation: 'compact', maximumFractionDigits: 1 });
  const date = new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', day: 'numeric' });
  const dateTime = new Intl.DateTimeFormat(locale, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  const day = new Intl.DateTimeFormat(locale, { month: 'numeric', day: 'numeric', timeZone: 'UTC' });
  return {
    number: (value: number) => integer.format(value),
    compact: (value: number) => compact.format(value),
    percent: (value: number) => percent.format(value),
    currency: (value: number, currency = locale === 'zh-CN' ? 'CNY' : 'USD') =>
      new Intl.NumberFormat(locale, { style: 'currency', currency }).format(value),
    date: (iso: string | null | undefined) => (iso ? date.format(new Date(iso)) : '—'),
    dateTime: (iso: string | null | undefined) => (iso ? dateTime.format(new Date(iso)) : '—'),
    /** A YYYY-MM-DD calendar day, shown without shifting it through a time zone. */
    day: (ymd: string) => day.format(new Date(`${ymd}T00:00:00Z`)),
  };
}

interface I18n {
  locale: Locale;
  setLocale(locale: Locale): void;
  t(key: MessageKey, vars?: Record<string, string | number>): string;
  format: ReturnType<typeof formatters>;
}

const I18nContext = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ReactNode }) {
  const [locale, setLocale] = useState<Locale>(() => initialLocale(localStorage.getItem(STORAGE_KEY), navigator.languages ?? []));
  useEffect(() => {
    localStorage.setItem(STORAGE_KEY, locale);
    document.documentElement.lang = locale;
  }, [locale]);
  const value = useMemo<I18n>(
    () => ({ locale, setLocale, t: (key, vars) => translate(locale, key, vars), format: formatters(locale) }),
    [locale],
  );
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const context = useContext(I18nContext);
  if (!context) throw new Error('useI18n outside I18nProvider');
  return context;
}
