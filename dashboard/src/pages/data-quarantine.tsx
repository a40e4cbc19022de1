import { useState } from 'react';
import { api } from '../api/endpoints.ts';
import type { QuarantineItem } from '../api/types.ts';
import { Card, ConfirmDialog, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { RoleHint } from '../components/forms.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { may } from '../permissions.ts';
import { DataHeader } from './data.tsx';

const STATUSES = ['open', 'replayed', 'discarded'] as const;

/** Events that failed validation: look at each, replay it (as received or corrected) or discard it. */
export function QuarantinePage() {
  const { t, format } = useI18n();
  const [status, setStatus] = useState<(typeof STATUSES)[number]>('open');
  const [reason, setReason] = useState('');
  const list = useApi((signal) => api.quarantine({ status, reason: reason.trim() || undefined, limit: 100 }, signal), [status, reason]);
  const [open, setOpen] = useState<string | null>(null);
  const [bulk, setBulk] = useState<{ attempted: number; replayed: number; failed: number } | null>(null);
  const [bulkError, setBulkError] = useState<unknown>();
  const [confirmAll, setConfirmAll] = useState(false);
  // Shown on the page: a replayed item leaves the open list (and its detail) at once.
  const [notice, setNotice] = useState('');
  const canWrite = may('quarantine.write');

  const replayAll = async () => {
    setConfirmAll(false);
    setNotice('');
    setBulkError(undefined);
    try {
      const result = await api.replayAll({ reason: reason.trim() || undefined });
      setBulk({ attempted: result.attempted, replayed: result.replayed, failed: result.failed.length });
      list.reload();
    } catch (error) {
      setBulkError(error);
    }
  };

  return (
    <>
      <DataHeader />
      <div className="filters">
        <label>
          {t('common.status')}
          <select value={status} onChange={(event) => setStatus(event.target.value as (typeof STATUSES)[number])}>
            {STATUSES.map((value) => (
              <option key={value} value={value}>
                {t(`quarantine.status.${value}`)}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('quarantine.reason')}
          <input value={reason} onChange={(event) => setReason(event.target.value)} placeholder="missing_identity" />
        </label>
        <button type="button" disabled={!canWrite || status !== 'open' || !list.data?.items.length} onClick={() => setConfirmAll(true)}>
          {t('quarantine.replayAll')}
        </button>
        <RoleHint allowed={canWrite} />
      </div>
      {bulk && (
        <p className="notice" role="status">
          {t('quarantine.bulkResult', { attempted: bulk.attempted, replayed: bulk.replayed, failed: bulk.failed })}
        </p>
      )}
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorNotice error={bulkError} />
      <ErrorNotice error={list.error} onRetry={list.reload} />
      {list.loading && !list.data && <Loading />}
      {list.data && list.data.items.length === 0 && <Empty>{status === 'open' ? t('quarantine.emptyOpen') : t('quarantine.empty')}</Empty>}
      {list.data && list.data.items.length > 0 && (
        <ul className="quarantine-list" data-testid="quarantine-list">
          {list.data.items.map((item) => (
            <li key={item.id}>
              <button type="button" className="link" aria-expanded={open === item.id} onClick={() => setOpen(open === item.id ? null : item.id)}>
                <strong>{item.reason}</strong>
                {item.field && <code> {item.field}</code>} · {item.endpoint} · {format.dateTime(item.receivedAt)}
              </button>
              <p className="subtle">{item.errors[item.errors.length - 1]?.message}</p>
              {open === item.id && (
                <QuarantineDetailView
                  item={item}
                  canWrite={canWrite}
                  onChanged={(message) => {
                    setNotice(message);
                    list.reload();
                  }}
                />
              )}
            </li>
          ))}
        </ul>
      )}
      <ConfirmDialog open={confirmAll} message={t('quarantine.replayAllConfirm')} onCancel={() => setConfirmAll(false)} onConfirm={() => void replayAll()} />
    </>
  );
}

function QuarantineDetailView({ item, canWrite, onChanged }: { item: QuarantineItem; canWrite: boolean; onChanged(notice: string): void }) {
  const { t, format } = useI18n();
  const detail = useApi((signal) => api.quarantineItem(item.id, signal), [item.id]);
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<unknown>();
  const [parseError, setParseError] = useState('');
  const payloadText = text ?? (detail.data ? JSON.stringify(detail.data.payload, null, 2) : '');

  const replay = async (corrected: boolean) => {
    setError(undefined);
    setParseError('');
    let payload: unknown;
    if (corrected) {
      try {
        payload = JSON.parse(payloadText);
      } catch (caught) {
        setParseError((caught as Error).message);
        return;
      }
    }
    try {
      const result = await api.replay(item.id, payload);
      onChanged(t(result.duplicate ? 'quarantine.replayedDuplicate' : 'quarantine.replayed', { id: result.messageId }));
    } catch (caught) {
      setError(caught);
    }
  };
  const discard = async () => {
    setError(undefined);
    try {
      await api.discard(item.id);
      onChanged(t('quarantine.discarded'));
    } catch (caught) {
      setError(caught);
    }
  };

  return (
    <Card title={t('quarantine.item')}>
      <ErrorNotice error={detail.error} onRetry={detail.reload} />
      {detail.loading && <Loading />}
      <ol className="subtle">
        {item.errors.map((entry, index) => (
          <li key={index}>
            {format.dateTime(entry.at ?? item.receivedAt)} · <code>{entry.error}</code> {entry.field && <code>{entry.field}</code>} {entry.message}
          </li>
        ))}
      </ol>
      {detail.data && (
        <label className="wide">
          {t('quarantine.payload')}
          <textarea rows={10} value={payloadText} onChange={(event) => setText(event.target.value)} readOnly={!canWrite || item.status !== 'open'} aria-invalid={parseError ? true : undefined} />
        </label>
      )}
      {parseError && (
        <p className="field-error" role="alert">
          {t('quarantine.notJson')}: {parseError}
        </p>
      )}
      <ErrorNotice error={error} />
      {item.status === 'open' && (
        <div className="form-actions">
          <button type="button" className="primary" disabled={!canWrite} onClick={() => void replay(false)}>
            {t('quarantine.replay')}
          </button>
          <button type="button" disabled={!canWrite || text === null} onClick={() => void replay(true)}>
            {t('quarantine.replayCorrected')}
          </button>
          <button type="button" disabled={!canWrite} onClick={() => void discard()}>
            {t('quarantine.discard')}
          </button>
        </div>
      )}
    </Card>
  );
}
