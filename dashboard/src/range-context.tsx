import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { presetRange, resolveRange, type TimeRange } from './time-range.ts';

const STORAGE_KEY = 'touchpoint.range';
const RangeContext = createContext<{ range: TimeRange; resolved: { from: string; to: string }; setRange(range: TimeRange): void } | null>(null);

function stored(): TimeRange {
  try {
    const value = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null') as TimeRange | null;
    if (value && typeof value.preset === 'string' && typeof value.from === 'string') return value;
  } catch {
    // an unreadable value falls back to the default
  }
  return presetRange('30d');
}

/** The time range shared by every page, remembered across visits. */
export function RangeProvider({ children }: { children: ReactNode }) {
  const [range, setRange] = useState<TimeRange>(stored);
  useEffect(() => localStorage.setItem(STORAGE_KEY, JSON.stringify(range)), [range]);
  const resolved = resolveRange(range);
  return <RangeContext.Provider value={{ range, resolved, setRange }}>{children}</RangeContext.Provider>;
}

export function useRange() {
  const context = useContext(RangeContext);
  if (!context) throw new Error('useRange outside RangeProvider');
  return context;
}
