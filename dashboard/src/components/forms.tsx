import { useState, type ReactNode } from 'react';
import { ApiRequestError } from '../api/client.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { Link, useLocation } from '../router.tsx';
import { ErrorNotice } from './common.tsx';

/** Whether an API error names this field (or a field inside it, e.g. identity.types.email.priority under identity.types.email). */
export function errorOnField(error: unknown, field: string, exact = false): ApiRequestError | undefined {
  if (!(error instanceof ApiRequestError) || !error.field) return undefined;
  return error.field === field || (!exact && error.field.startsWith(`${field}.`)) ? error : undefined;
}

/** The API's reason, right under the control that caused it. */
export function FieldError({ error, field, id, exact }: { error: unknown; field: string; id?: string; exact?: boolean }) {
  const { t } = useI18n();
  const match = errorOnField(error, field, exact);
  if (!match) return null;
  return (
    <span className="field-error" role="alert" id={id} data-testid="field-error" data-field={match.field}>
      {match.message} <code>{match.code}</code> {match.status ? `(${t('error.status')} ${match.status})` : ''}
    </span>
  );
}

/** An API error that no field on the page shows: the full notice. */
export function UnplacedError({ error, fields }: { error: unknown; fields: readonly string[] }) {
  if (!error) return null;
  if (fields.some((field) => errorOnField(error, field))) return null;
  return <ErrorNotice error={error} />;
}

/** Sub-pages of a section as tabs (links: each has its own URL). */
export function SectionTabs({ tabs, label }: { tabs: Array<{ to: string; label: MessageKey }>; label: string }) {
  const { t } = useI18n();
  const { path } = useLocation();
  return (
    <nav aria-label={label} className="section-tabs">
      {tabs.map((tab, index) => (
        <Link
          key={tab.to}
          to={tab.to}
          className="section-tab"
          aria-current={path === tab.to || (index === 0 && path === `/${tab.to.split('/')[1]}`) ? 'page' : undefined}
        >
          {t(tab.label)}
        </Link>
      ))}
    </nav>
  );
}

/** A secret shown exactly once (a new or rotated key): copy it now, it is never shown again. */
export function SecretOnce({ secret, onDone }: { secret: string; onDone(): void }) {
  const { t } = useI18n();
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    await navigator.clipboard?.writeText(secret).catch(() => undefined);
    setCopied(true);
  };
  return (
    <div className="secret-once" role="status" data-testid="secret-once">
      <strong>{t('keys.shownOnce')}</strong>
      <code data-testid="secret-value">{secret}</code>
      <div className="form-actions">
        <button type="button" onClick={() => void copy()}>
          {copied ? t('keys.copied') : t('keys.copy')}
        </button>
        <button type="button" className="primary" onClick={onDone}>
          {t('keys.storedIt')}
        </button>
      </div>
    </div>
  );
}

/** A labelled progress bar (role progressbar); value null while the total is unknown. */
export function ProgressBar({ value, label, text }: { value: number | null; label: string; text?: ReactNode }) {
  const percent = value === null ? undefined : Math.round(Math.min(1, Math.max(0, value)) * 100);
  return (
    <div className="progress">
      <div
        className="progress-track"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={percent}
        aria-valuetext={percent === undefined ? undefined : `${percent}%`}
      >
        <div className={percent === undefined ? 'progress-fill indeterminate' : 'progress-fill'} style={{ width: `${percent ?? 30}%` }} />
      </div>
      {text && <span className="progress-text">{text}</span>}
    </div>
  );
}

/** "Read-only for your role" beside a control that is disabled for that reason. */
export function RoleHint({ allowed }: { allowed: boolean }) {
  const { t } = useI18n();
  if (allowed) return null;
  return <small className="subtle role-hint">{t('common.roleCannot')}</small>;
}
