import { useEffect, useState, type FormEvent } from 'react';
import { ApiRequestError, downloadFile } from '../api/client.ts';
import { api } from '../api/endpoints.ts';
import type { ImportJob } from '../api/types.ts';
import { Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { FieldError, ProgressBar, RoleHint, UnplacedError } from '../components/forms.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { may } from '../permissions.ts';
import { DataHeader } from './data.tsx';

const FIELDS = ['source', 'file', 'type', 'event', 'eventColumn', 'map', 'timeZone', 'format'];

/** Upload a CSV/NDJSON file, watch it import, download its rejected rows. */
export function ImportsPage() {
  const { t } = useI18n();
  const sources = useApi((signal) => api.sources(signal), []);
  const jobs = useApi((signal) => api.imports(signal), []);
  const [file, setFile] = useState<File | null>(null);
  const [source, setSource] = useState('');
  const [type, setType] = useState<'identify' | 'track'>('identify');
  const [event, setEvent] = useState('');
  const [map, setMap] = useState('');
  const [onlyMapped, setOnlyMapped] = useState(false);
  const [timeZone, setTimeZone] = useState('UTC');
  const [dryRun, setDryRun] = useState(false);
  const [upload, setUpload] = useState<{ sent: number; total: number } | null>(null);
  const [error, setError] = useState<unknown>();
  const [current, setCurrent] = useState<ImportJob | null>(null);
  const canWrite = may('imports.write');

  // Poll the running import until it ends.
  useEffect(() => {
    if (!current || current.status !== 'running') return;
    const timer = setTimeout(() => {
      api.importJob(current.id).then(
        (job) => {
          setCurrent(job);
          if (job.status !== 'running') jobs.reload();
        },
        (caught: unknown) => setError(caught),
      );
    }, 500);
    return () => clearTimeout(timer);
  }, [current]);

  const submit = async (submitEvent: FormEvent) => {
    submitEvent.preventDefault();
    if (!file) return;
    setError(undefined);
    setCurrent(null);
    setUpload({ sent: 0, total: file.size });
    try {
      const job = await api.startImport(
        file,
        {
          source: source || sources.data?.items.find((item) => item.status === 'active')?.id,
          type,
          event: type === 'track' && event.trim() ? event.trim() : undefined,
          map: map.trim() || undefined,
          onlyMapped: onlyMapped || undefined,
          timeZone: timeZone.trim() || undefined,
          dryRun: dryRun || undefined,
        },
        (sent, total) => setUpload({ sent, total }),
      );
      setCurrent(job);
      jobs.reload();
    } catch (caught) {
      setError(caught);
    } finally {
      setUpload(null);
    }
  };

  return (
    <>
      <DataHeader />
      <Card title={t('imports.new')}>
        <p className="help">{t('imports.help')}</p>
        <form className="stack-form" onSubmit={(submitEvent) => void submit(submitEvent)}>
          <div className="form-row">
            <label>
              {t('common.source')}
              <select value={source} onChange={(changeEvent) => setSource(changeEvent.target.value)} disabled={!canWrite}>
                {sources.data?.items
                  .filter((item) => item.status === 'active')
                  .map((item) => (
                    <option key={item.id} value={item.id}>
                      {item.name}
                    </option>
                  ))}
              </select>
              <FieldError error={error} field="source" />
            </label>
            <label>
              {t('imports.file')}
              <input type="file" accept=".csv,.ndjson,.jsonl,.gz" disabled={!canWrite} onChange={(changeEvent) => setFile(changeEvent.target.files?.[0] ?? null)} />
              <FieldError error={error} field="file" />
              <FieldError error={error} field="format" />
            </label>
            <label>
              {t('imports.rowsAre')}
              <select value={type} onChange={(changeEvent) => setType(changeEvent.target.value as 'identify' | 'track')} disabled={!canWrite}>
                <option value="identify">{t('imports.identify')}</option>
                <option value="track">{t('imports.track')}</option>
              </select>
              <FieldError error={error} field="type" />
            </label>
            {type === 'track' && (
              <label>
                {t('imports.eventName')}
                <input value={event} onChange={(changeEvent) => setEvent(changeEvent.target.value)} placeholder="Order Completed" disabled={!canWrite} />
                <FieldError error={error} field="event" />
              </label>
            )}
            <label>
              {t('imports.timeZone')}
              <input value={timeZone} onChange={(changeEvent) => setTimeZone(changeEvent.target.value)} disabled={!canWrite} />
              <FieldError error={error} field="timeZone" />
            </label>
          </div>
          <label className="wide">
            {t('imports.mapping')}
            <input value={map} onChange={(changeEvent) => setMap(changeEvent.target.value)} placeholder="userId=CustomerID,timestamp=InvoiceDate,properties.amount=Amount:number" disabled={!canWrite} />
            <FieldError error={error} field="map" />
          </label>
          <div className="form-actions">
            <label className="inline">
              <input type="checkbox" checked={onlyMapped} onChange={(changeEvent) => setOnlyMapped(changeEvent.target.checked)} disabled={!canWrite} />
              {t('imports.onlyMapped')}
            </label>
            <label className="inline">
              <input type="checkbox" checked={dryRun} onChange={(changeEvent) => setDryRun(changeEvent.target.checked)} disabled={!canWrite} />
              {t('imports.dryRun')}
            </label>
            <button type="submit" className="primary" disabled={!canWrite || !file || upload !== null}>
              {t('imports.start')}
            </button>
            <RoleHint allowed={canWrite} />
          </div>
        </form>
        <UnplacedError error={error} fields={FIELDS} />
        {upload && <ProgressBar label={t('imports.uploading')} value={upload.total ? upload.sent / upload.total : null} text={t('imports.uploading')} />}
        {current && <ImportStatus job={current} />}
      </Card>
      <Card title={t('imports.recent')}>
        <ErrorNotice error={jobs.error} onRetry={jobs.reload} />
        {jobs.loading && !jobs.data && <Loading />}
        {jobs.data && jobs.data.items.length === 0 && <Empty>{t('imports.empty')}</Empty>}
        {jobs.data && jobs.data.items.length > 0 && (
          <table className="table compact" data-testid="import-list">
            <thead>
              <tr>
                <th scope="col">{t('imports.file')}</th>
                <th scope="col">{t('common.source')}</th>
                <th scope="col">{t('common.status')}</th>
                <th scope="col" className="num">{t('imports.stored')}</th>
                <th scope="col" className="num">{t('imports.rejected')}</th>
                <th scope="col">{t('imports.rejects')}</th>
              </tr>
            </thead>
            <tbody>
              {jobs.data.items.map((job) => (
                <tr key={job.id}>
                  <td>{job.fileName}</td>
                  <td>{job.sourceName}</td>
                  <td>{t(`imports.status.${job.status}`)}</td>
                  <td className="num">{job.progress.stored}</td>
                  <td className="num">{job.progress.rejected}</td>
                  <td>{job.hasRejects ? <RejectsDownload job={job} /> : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}

function ImportStatus({ job }: { job: ImportJob }) {
  const { t, format } = useI18n();
  const { progress } = job;
  const share = progress.totalBytes > 0 ? progress.bytesRead / progress.totalBytes : null;
  return (
    <div className="import-status" data-testid="import-status" aria-live="polite">
      <ProgressBar
        label={t('imports.progress')}
        value={job.status === 'running' ? share : 1}
        text={t('imports.progressText', {
          rows: format.number(progress.rowsRead),
          stored: format.number(progress.stored),
          duplicates: format.number(progress.duplicates),
          rejected: format.number(progress.rejected),
        })}
      />
      <p>
        <strong data-testid="import-state">{t(`imports.status.${job.status}`)}</strong>
        {Object.keys(job.rejectReasons).length > 0 && (
          <span className="subtle">
            {' '}
            · {Object.entries(job.rejectReasons).map(([reason, count]) => `${reason} ${format.number(count)}`).join(', ')}
          </span>
        )}
      </p>
      {job.error && <ErrorNotice error={new ApiRequestError(0, job.error.code, job.error.message, job.error.field ?? undefined)} />}
      {job.hasRejects && <RejectsDownload job={job} />}
    </div>
  );
}

/** Downloads the rejected rows (NDJSON), counting lines as they arrive. */
function RejectsDownload({ job }: { job: ImportJob }) {
  const { t, format } = useI18n();
  const [state, setState] = useState<{ lines: number; done: boolean } | null>(null);
  const [error, setError] = useState<unknown>();
  const download = async () => {
    setError(undefined);
    setState({ lines: 0, done: false });
    try {
      const result = await downloadFile(api.importRejectsUrl(job.id), `${job.fileName}.rejects.ndjson`, (_bytes, lines) => setState({ lines, done: false }));
      setState({ lines: result.lines, done: true });
    } catch (caught) {
      setError(caught);
      setState(null);
    }
  };
  return (
    <>
      <button type="button" className="link" onClick={() => void download()}>
        {t('imports.downloadRejects')}
      </button>
      {state && <span className="subtle"> {t(state.done ? 'imports.downloaded' : 'imports.downloading', { lines: format.number(state.lines) })}</span>}
      <ErrorNotice error={error} />
    </>
  );
}
