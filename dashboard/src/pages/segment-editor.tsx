import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiRequestError } from '../api/client.ts';
import { authHeaders } from '../auth.ts';
import { api } from '../api/endpoints.ts';
import type { Preview, Segment } from '../api/types.ts';
import { BarChart, Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { useRange } from '../range-context.tsx';
import { Link, navigate } from '../router.tsx';
import { errorMarker, transitionsPerDay } from '../segment-text.ts';
import { KIND_LABEL } from './segments.tsx';

const KINDS: Segment['kind'][] = ['realtime', 'periodic', 'static'];

/** Create or edit a segment in the text language, with the server's preview and parse errors. */
export function SegmentEditorPage({ segmentKey }: { segmentKey?: string }) {
  const { t, format } = useI18n();
  const existing = useApi((signal) => (segmentKey ? api.segment(segmentKey, signal) : Promise.resolve(undefined)), [segmentKey]);
  const [key, setKey] = useState('');
  const [name, setName] = useState('');
  const [kind, setKind] = useState<Segment['kind']>('realtime');
  const [schedule, setSchedule] = useState('');
  const [text, setText] = useState('');
  const [preview, setPreview] = useState<Preview>();
  const [previewError, setPreviewError] = useState<unknown>();
  const [previewing, setPreviewing] = useState(false);
  const [saveError, setSaveError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const previewAbort = useRef<AbortController>(null);

  useEffect(() => {
    const segment = existing.data;
    if (!segment) return;
    setKey(segment.key);
    setName(segment.name);
    setKind(segment.kind);
    setSchedule(segment.schedule ?? '');
    setText(segment.text ?? '');
  }, [existing.data]);

  const runPreview = async () => {
    previewAbort.current?.abort();
    const controller = new AbortController();
    previewAbort.current = controller;
    setPreviewing(true);
    setPreviewError(undefined);
    try {
      setPreview(await api.previewSegment({ text, sampleSize: 10 }, controller.signal));
    } catch (error) {
      if ((error as Error).name !== 'AbortError') {
        setPreview(undefined);
        setPreviewError(error);
      }
    } finally {
      if (previewAbort.current === controller) setPreviewing(false);
    }
  };

  const save = async (event: FormEvent) => {
    event.preventDefault();
    setSaveError(undefined);
    setSaved(false);
    try {
      const scheduled = kind === 'periodic' ? { schedule } : {};
      if (segmentKey) {
        await api.updateSegment(segmentKey, { name, kind, text, ...(kind === 'periodic' ? { schedule } : { schedule: null }) });
        existing.reload();
        setSaved(true);
      } else {
        const created = await api.createSegment({ key, name, kind, text, ...scheduled });
        navigate(`/segments/${encodeURIComponent(created.key)}`, { replace: true });
      }
    } catch (error) {
      setSaveError(error);
    }
  };

  if (segmentKey && existing.error) return <ErrorNotice error={existing.error} onRetry={existing.reload} />;
  if (segmentKey && !existing.data) return <Loading />;
  const textError = [previewError, saveError].find((error) => error instanceof ApiRequestError && error.field === 'text') as ApiRequestError | undefined;
  const line = Number(textError?.details?.line);
  const column = Number(textError?.details?.column);
  const marker = textError && line && column ? errorMarker(text, line, column, Number(textError.details?.length) || 1) : null;

  return (
    <>
      <p>
        <Link to="/segments">← {t('common.back')}</Link>
      </p>
      <h1>{segmentKey ? `${t('segments.edit')}: ${existing.data?.name}` : t('segments.new')}</h1>
      <form className="segment-form" onSubmit={save}>
        <div className="form-row">
          <label>
            {t('common.key')}
            <input name="key" required disabled={!!segmentKey} value={key} onChange={(event) => setKey(event.target.value)} placeholder="vip_shanghai" />
          </label>
          <label>
            {t('common.name')}
            <input name="name" required value={name} onChange={(event) => setName(event.target.value)} />
          </label>
          <label>
            {t('segments.kind')}
            <select name="kind" value={kind} onChange={(event) => setKind(event.target.value as Segment['kind'])}>
              {KINDS.map((value) => (
                <option key={value} value={value}>
                  {t(KIND_LABEL[value])}
                </option>
              ))}
            </select>
          </label>
          {kind === 'periodic' && (
            <label>
              {t('segments.schedule')}
              <input name="schedule" required value={schedule} onChange={(event) => setSchedule(event.target.value)} placeholder="0 2 * * *" />
            </label>
          )}
        </div>
        <label htmlFor="segment-text">{t('segments.definition')}</label>
        <textarea
          id="segment-text"
          name="text"
          rows={6}
          spellCheck={false}
          value={text}
          aria-invalid={textError ? true : undefined}
          aria-describedby="segment-text-help"
          onChange={(event) => setText(event.target.value)}
        />
        <p id="segment-text-help" className="help">
          {t('segments.definitionHelp')}
        </p>
        {marker && (
          <pre className="error-marker" data-testid="error-marker" aria-hidden="true">
            {marker.lineText}
            {'\n'}
            {marker.caret}
          </pre>
        )}
        <div className="form-actions">
          <button type="button" onClick={() => void runPreview()} disabled={!text.trim() || previewing}>
            {previewing ? t('segments.previewing') : t('segments.preview')}
          </button>
          <button type="submit" className="primary">
            {segmentKey ? t('segments.saveChanges') : t('segments.create')}
          </button>
          {saved && (
            <span role="status" className="notice-inline">
              {t('segments.saved')}
            </span>
          )}
        </div>
      </form>
      <ErrorNotice error={saveError} />
      <ErrorNotice error={previewError} />
      {preview && <PreviewPanel preview={preview} />}
      {existing.data && (
        <>
          <p className="subtle">
            {t('common.members')}: <strong>{format.number(existing.data.memberCount)}</strong> · {existing.data.state} · v{existing.data.version} ·{' '}
            <ExportLink segmentKey={existing.data.key} />
          </p>
          <MembershipHistory segmentKey={existing.data.key} />
        </>
      )}
    </>
  );
}

function PreviewPanel({ preview }: { preview: Preview }) {
  const { t, format } = useI18n();
  const sampleKeys = [...new Set(preview.sample.flatMap((profile) => Object.keys(profile.traits)))].slice(0, 5);
  return (
    <Card title={t('segments.preview')}>
      <p className="metric-value" data-testid="preview-size">
        {format.number(preview.estimatedSize)}
        {!preview.exact && <small> ({t('segments.approximate')})</small>}
      </p>
      <p className="subtle">
        {t('segments.size')} · {format.number(Math.round(preview.durationMs))} ms
      </p>
      {preview.warnings.length > 0 && (
        <ul className="warnings" aria-label={t('segments.warnings')}>
          {preview.warnings.map((warning) => (
            <li key={warning.path + warning.message}>
              {warning.message}
              {warning.suggestion && ` → ${warning.suggestion}`}
            </li>
          ))}
        </ul>
      )}
      <h3>{t('segments.sample')}</h3>
      {preview.sample.length === 0 ? (
        <Empty>{t('segments.sampleEmpty')}</Empty>
      ) : (
        <table className="table compact" data-testid="preview-sample">
          <thead>
            <tr>
              <th scope="col">id</th>
              {sampleKeys.map((key) => (
                <th scope="col" key={key}>
                  {key}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {preview.sample.map((profile) => (
              <tr key={profile.id}>
                <td>
                  <Link to={`/profiles/${profile.id}`}>{profile.id.slice(0, 8)}</Link>
                </td>
                {sampleKeys.map((key) => (
                  <td key={key}>{profile.traits[key] === undefined ? '' : String(profile.traits[key])}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

/** The CSV export needs the bearer key, so it is fetched and handed to the browser as a download. */
function ExportLink({ segmentKey }: { segmentKey: string }) {
  const { t } = useI18n();
  const [error, setError] = useState<string>();
  const download = async () => {
    const response = await fetch(`${api.segmentExportUrl(segmentKey)}?identifiers=email,phone,user_id`, { headers: authHeaders() });
    if (!response.ok) {
      setError(`${response.status} ${await response.text()}`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement('a');
    link.href = url;
    link.download = `${segmentKey}.csv`;
    link.click();
    URL.revokeObjectURL(url);
  };
  return (
    <>
      <button type="button" className="link" onClick={() => void download()}>
        {t('segments.exportCsv')}
      </button>
      {error && <span role="alert"> {error}</span>}
    </>
  );
}

function MembershipHistory({ segmentKey }: { segmentKey: string }) {
  const { t, format } = useI18n();
  const { resolved } = useRange();
  const history = useApi((signal) => api.transitions(segmentKey, { limit: 500 }, signal), [segmentKey]);
  const inRange = (history.data?.items ?? []).filter((item) => item.at >= resolved.from && item.at < resolved.to);
  const days = transitionsPerDay(inRange);
  return (
    <Card title={t('segments.history')}>
      <ErrorNotice error={history.error} onRetry={history.reload} />
      {history.loading && <Loading />}
      {history.data && days.length === 0 && <Empty>{t('segments.noHistory')}</Empty>}
      {days.length > 0 && (
        <div className="grid-2">
          <div>
            <h3>{t('segments.entered')}</h3>
            <BarChart label={t('segments.entered')} format={format.number} data={days.map((d) => ({ label: format.day(d.day), value: d.entered }))} />
          </div>
          <div>
            <h3>{t('segments.exited')}</h3>
            <BarChart label={t('segments.exited')} format={format.number} data={days.map((d) => ({ label: format.day(d.day), value: d.exited }))} />
          </div>
        </div>
      )}
    </Card>
  );
}
