import { useState } from 'react';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { useRange } from '../range-context.tsx';
import { customRange, localDay, presetRange, type RangePreset } from '../time-range.ts';

const PRESETS: Array<Exclude<RangePreset, 'custom'>> = ['today', '7d', '30d', '90d'];

export function RangePicker() {
  const { t } = useI18n();
  const { range, resolved, setRange } = useRange();
  const [from, setFrom] = useState(localDay(resolved.from));
  const [to, setTo] = useState(localDay(new Date(new Date(resolved.to).getTime() - 1).toISOString()));
  return (
    <div className="range-picker">
      <label>
        {t('range.label')}
        <select
          value={range.preset}
          onChange={(event) => {
            const preset = event.target.value as RangePreset;
            if (preset !== 'custom') setRange(presetRange(preset));
            else setRange({ ...range, preset: 'custom', ...resolved });
          }}
        >
          {[...PRESETS, 'custom' as const].map((preset) => (
            <option key={preset} value={preset}>
              {t(`range.${preset}` as MessageKey)}
            </option>
          ))}
        </select>
      </label>
      {range.preset === 'custom' && (
        <form
          className="range-custom"
          onSubmit={(event) => {
            event.preventDefault();
            const custom = customRange(from, to);
            if (custom) setRange(custom);
          }}
        >
          <label>
            {t('range.from')}
            <input type="date" value={from} onChange={(event) => setFrom(event.target.value)} />
          </label>
          <label>
            {t('range.to')}
            <input type="date" value={to} min={from} onChange={(event) => setTo(event.target.value)} />
          </label>
          <button type="submit">{t('range.apply')}</button>
        </form>
      )}
    </div>
  );
}
