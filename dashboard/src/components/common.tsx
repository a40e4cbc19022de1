import { useEffect, useRef, type ReactNode } from 'react';
import { ApiRequestError } from '../api/client.ts';
import { useI18n } from '../i18n/index.tsx';

/** An API error as the API gave it: status, code, the field at fault and the reason. */
export function ErrorNotice({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const { t } = useI18n();
  if (!error) return null;
  const api = error instanceof ApiRequestError ? error : undefined;
  const line = typeof api?.details?.line === 'number' ? api.details.line : undefined;
  const column = typeof api?.details?.column === 'number' ? api.details.column : undefined;
  return (
    <div className="error" role="alert">
      <strong>{t('error.title')}</strong>
      <p className="error-message">{(error as Error).message}</p>
      {api && (
        <dl className="error-facts">
          <dt>{t('error.status')}</dt>
          <dd data-testid="error-status">{api.status || '—'}</dd>
          <dt>{t('error.code')}</dt>
          <dd data-testid="error-code">{api.code}</dd>
          {api.field && (
            <>
              <dt>{t('error.field')}</dt>
              <dd data-testid="error-field">{api.field}</dd>
            </>
          )}
          {line !== undefined && column !== undefined && (
            <>
              <dt>{t('error.where')}</dt>
              <dd data-testid="error-position">{t('error.position', { line, column })}</dd>
            </>
          )}
        </dl>
      )}
      {onRetry && (
        <button type="button" onClick={onRetry}>
          {t('common.retry')}
        </button>
      )}
    </div>
  );
}

export function Loading() {
  const { t } = useI18n();
  return (
    <p className="loading" role="status">
      {t('common.loading')}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

export function Card({ title, children, actions }: { title: string; children: ReactNode; actions?: ReactNode }) {
  return (
    <section className="card" aria-label={title}>
      <header className="card-header">
        <h2>{title}</h2>
        {actions}
      </header>
      {children}
    </section>
  );
}

/** A modal confirmation (the native dialog element: focus trap and Escape for free). */
export function ConfirmDialog(props: { open: boolean; message: string; busy?: boolean; onConfirm(): void; onCancel(): void }) {
  const { t } = useI18n();
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (props.open && !dialog.open) dialog.showModal?.();
    if (!props.open && dialog.open) dialog.close();
  }, [props.open]);
  return (
    <dialog ref={ref} onCancel={props.onCancel} aria-label={t('common.confirm')}>
      <p>{props.message}</p>
      <div className="dialog-actions">
        <button type="button" onClick={props.onCancel}>
          {t('common.cancel')}
        </button>
        <button type="button" className="danger" disabled={props.busy} onClick={props.onConfirm}>
          {t('common.confirm')}
        </button>
      </div>
    </dialog>
  );
}

/** A plain SVG bar chart: small enough for the first page (chart libraries load with later pages). */
export function BarChart({ data, label, format }: { data: Array<{ label: string; value: number }>; label: string; format(value: number): string }) {
  const width = 640;
  const height = 180;
  const max = Math.max(1, ...data.map((d) => d.value));
  const step = data.length ? width / data.length : width;
  const bar = Math.max(1, step * 0.7);
  const labelEvery = Math.ceil(data.length / 10);
  return (
    <svg className="chart" viewBox={`0 0 ${width} ${height + 24}`} role="img" aria-label={label}>
      {data.map((d, i) => {
        const h = (d.value / max) * height;
        return (
          <g key={d.label}>
            <rect x={i * step + (step - bar) / 2} y={height - h} width={bar} height={Math.max(h, d.value ? 1 : 0)} className="bar">
              <title>{`${d.label}: ${format(d.value)}`}</title>
            </rect>
            {i % labelEvery === 0 && (
              <text x={i * step + step / 2} y={height + 16} textAnchor="middle" className="axis">
                {d.label}
              </text>
            )}
          </g>
        );
      })}
      <line x1={0} x2={width} y1={height} y2={height} className="baseline" />
    </svg>
  );
}
