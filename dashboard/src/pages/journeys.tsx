import { useState, type FormEvent } from 'react';
import { ApiRequestError } from '../api/client.ts';
import { api } from '../api/endpoints.ts';
import type { Journey } from '../api/types.ts';
import { currentCredentials, currentRole } from '../auth.ts';
import { Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { starterDefinition } from '../journey-model.ts';
import { Link, navigate } from '../router.tsx';

export const JOURNEY_STATUS: Record<Journey['status'], MessageKey> = {
  draft: 'journeys.status.draft',
  published: 'journeys.status.published',
  paused: 'journeys.status.paused',
  archived: 'journeys.status.archived',
};

/** Who may change journeys: not viewers, not analysts (the server refuses them anyway). */
export function canEditJourneys(): boolean {
  const role = currentRole(currentCredentials());
  return role !== 'viewer' && role !== 'analyst';
}

function NewJourneyForm({ onCancel }: { onCancel(): void }) {
  const { t } = useI18n();
  const [key, setKey] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const created = await api.createJourney({ key, name, definition: starterDefinition() });
      navigate(`/journeys/${encodeURIComponent(created.key)}`);
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  };
  const field = error instanceof ApiRequestError ? error.field : undefined;
  return (
    <form className="segment-form" onSubmit={(event) => void submit(event)} aria-label={t('journeys.new')}>
      <div className="form-actions">
        <label>
          {t('common.key')}
          <input value={key} required pattern="[A-Za-z0-9_.\-]+" onChange={(event) => setKey(event.target.value)} aria-invalid={field === 'key'} />
        </label>
        <label>
          {t('common.name')}
          <input value={name} required onChange={(event) => setName(event.target.value)} aria-invalid={field === 'name'} />
        </label>
        <button type="submit" className="primary" disabled={busy}>
          {t('journeys.create')}
        </button>
        <button type="button" onClick={onCancel}>
          {t('common.cancel')}
        </button>
      </div>
      <p className="help">{t('journeys.newHelp')}</p>
      <ErrorNotice error={error} />
    </form>
  );
}

export function JourneysPage() {
  const { t, format } = useI18n();
  const journeys = useApi((signal) => api.journeys(signal), []);
  const [creating, setCreating] = useState(false);
  const editable = canEditJourneys();
  return (
    <>
      <div className="page-head">
        <h1>{t('journeys.title')}</h1>
        {editable && !creating && (
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            {t('journeys.new')}
          </button>
        )}
      </div>
      {creating && <NewJourneyForm onCancel={() => setCreating(false)} />}
      <ErrorNotice error={journeys.error} onRetry={journeys.reload} />
      {journeys.loading && !journeys.data && <Loading />}
      {journeys.data && journeys.data.items.length === 0 && <Empty>{t(editable ? 'journeys.empty' : 'journeys.emptyReadOnly')}</Empty>}
      {journeys.data && journeys.data.items.length > 0 && (
        <table className="table" data-testid="journey-list">
          <thead>
            <tr>
              <th scope="col">{t('common.name')}</th>
              <th scope="col">{t('common.status')}</th>
              <th scope="col">{t('journeys.version')}</th>
              <th scope="col">{t('journeys.trigger')}</th>
              <th scope="col" className="num">
                {t('journeys.entered')}
              </th>
              <th scope="col">{t('journeys.problems')}</th>
              <th scope="col">{t('segments.updated')}</th>
            </tr>
          </thead>
          <tbody>
            {journeys.data.items.map((journey) => {
              const entry = journey.definition.nodes.find((node) => node.kind === 'entry');
              return (
                <tr key={journey.id}>
                  <td>
                    <Link to={`/journeys/${encodeURIComponent(journey.key)}`}>{journey.name}</Link>
                    <br />
                    <code className="subtle">{journey.key}</code>
                  </td>
                  <td>
                    <span className={`chip status-${journey.status}`}>{t(JOURNEY_STATUS[journey.status])}</span>
                  </td>
                  <td>{journey.currentVersion === null ? t('journeys.neverPublished') : `v${journey.currentVersion}`}</td>
                  <td>{entry?.kind === 'entry' ? t(`journeys.trigger.${entry.trigger.kind}`) : '—'}</td>
                  <td className="num">{format.number(journey.enteredCount)}</td>
                  <td>{journey.problems.length === 0 ? t('journeys.publishable') : <span className="error-inline">{t('journeys.problemCount', { count: journey.problems.length })}</span>}</td>
                  <td>{format.dateTime(journey.updatedAt)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </>
  );
}
