import { useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiRequestError, downloadFile } from '../api/client.ts';
import { api } from '../api/endpoints.ts';
import type { Preview, Segment } from '../api/types.ts';
import { BarChart, Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { useRange } from '../range-context.tsx';
import { Link, navigate } from '../router.tsx';
import { previewSizeView } from '../preview-size.ts';
import { errorMarker } from '../segment-text.ts';
import { sizeSeries } from '../segment-trend.ts';
import { daysOf } from '../time-range.ts';
import { may } from '../permissions.ts';
import { ProgressBar } from '../components/forms.tsx';
import { SegmentBuilder } from '../components/segment-builder.tsx';
import { asRootGroup, definitionOf, type Condition } from '../segment-builder-model.ts';
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
  const [mode, setMode] = useState<'visual' | 'text'>('visual');
  const [root, setRoot] = useState<Extract<Condition, { kind: 'and' | 'or' }>>(asRootGroup(null));
  const builderTimer = useRef<number>(undefined);

  useEffect(() => {
    const segment = existing.data;
    if (!segment) return;
    setKey(segment.key);
    setName(segment.name);
    setKind(segment.kind);
    setSchedule(segment.schedule ?? '');
    setText(segment.text ?? '');
    setRoot(asRootGroup((segment.definition as Condition | null) ?? null));
  }, [existing.data]);

  /** Preview from the text or from the builder's AST; the answer carries both forms, so each editor follows the other. */
  const runPreview = async (input: { text: string } | { definition: Condition } = { text }): Promise<Preview | undefined> => {
    previewAbort.current?.abort();
    const controller = new AbortController();
    previewAbort.current = controller;
    setPreviewing(true);
    setPreviewError(undefined);
    try {
      const result = await api.previewSegment({ ...input, sampleSize: 10 }, controller.signal);
      setPreview(result);
      if ('definition' in input) setText(result.text);
      return result;
    } catch (error) {
      if ((error as Error).name !== 'AbortError') {
        setPreview(undefined);
        setPreviewError(error);
      }
      return undefined;
    } finally {
      if (previewAbort.current === controller) setPreviewing(false);
    }
  };

  const changeBuilder = (next: Extract<Condition, { kind: 'and' | 'or' }>) => {
    setRoot(next);
    window.clearTimeout(builderTimer.current);
    const definition = definitionOf(next);
    if (!definition) {
      setText('');
      setPreview(undefined);
      return;
    }
    // Live size estimate while building: one preview after the user pauses.
    builderTimer.current = window.setTimeout(() => void runPreview({ definition }), 600);
  };

  const switchMode = async (next: 'visual' | 'text') => {
    if (next === mode) return;
    if (next === 'visual' && text.trim()) {
      const result = await runPreview({ text });
      if (!result) return; // a parse error stays in the text editor, shown with its position
      setRoot(asRootGroup(result.definition as Condition));
    }
    setMode(next);
  };

  const save = async (event: FormEvent) => {
    event.preventDefault();
    setSaveError(undefined);
    setSaved(false);
    try {
      const scheduled = kind === 'periodic' ? { schedule } : {};
      const builderDefinition = mode === 'visual' ? definitionOf(root) : null;
      const body = builderDefinition ? { definition: builderDefinition } : { text };
      if (segmentKey) {
        await api.updateSegment(segmentKey, { name, kind, ...body, ...(kind === 'periodic' ? { schedule } : { schedule: null }) });
        existing.reload();
        setSaved(true);
      } else {
        const created = await api.createSegment({ key, name, kind, ...body, ...scheduled });
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
        <div className="tabs" role="radiogroup" aria-label={t('segments.editorMode')}>
          {(['visual', 'text'] as const).map((value) => (
            <label key={value} className={mode === value ? 'tab active' : 'tab'}>
              <input type="radio" name="mode" value={value} checked={mode === value} onChange={() => void switchMode(value)} />
              {t(value === 'visual' ? 'segments.visual' : 'segments.textMode')}
            </label>
          ))}
        </div>
        {mode === 'visual' && <SegmentBuilder root={root} onChange={changeBuilder} />}
        {mode === 'visual' && text && (
          <p className="help" data-testid="builder-text">
            <code>{text}</code>
          </p>
        )}
        <div hidden={mode !== 'text'}>
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
        </div>
        {marker && (
          <pre className="error-marker" data-testid="error-marker" aria-hidden="true">
            {marker.lineText}
            {'\n'}
            {marker.caret}
          </pre>
        )}
        <div className="form-actions">
          <button
            type="button"
            onClick={() => {
              const definition = definitionOf(root);
              void runPreview(mode === 'visual' && definition ? { definition } : { text });
            }}
            disabled={(mode === 'text' ? !text.trim() : !definitionOf(root)) || previewing}
          >
            {previewing ? t('segments.previewing') : t('segments.preview')}
          </button>
          <button type="submit" className="primary" disabled={!may('segments.write')}>
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
          <RecomputeButton segmentKey={existing.data.key} onDone={existing.reload} />
          <MembershipHistory segmentKey={existing.data.key} />
        </>
      )}
    </>
  );
}

function PreviewPanel({ preview }: { preview: Preview }) {
  const { t, format } = useI18n();
  const sampleKeys = [...new Set(preview.sample.flatMap((profile) => Object.keys(profile.traits)))].slice(0, 5);
  const size = previewSizeView(preview);
  return (
    <Card title={t('segments.preview')}>
      <p className="metric-value" data-testid="preview-size">
        {size.kind === 'atMost' ? t('segments.atMost', { high: format.number(size.high) }) : format.number(size.value)}
        {(size.kind === 'estimate' || (size.kind === 'count' && size.approximate)) && <small> ({t('segments.approximate')})</small>}
      </p>
      <p className="subtle">
        {t('segments.size')} · {format.number(Math.round(preview.durationMs))} ms
      </p>
      {size.kind !== 'count' && (
        <p className="subtle" data-testid="preview-interval">
          {t('segments.sampledInterval', {
            low: format.number(size.kind === 'estimate' ? size.low : 0),
            high: format.number(size.high),
            sampled: format.number(size.sampled),
            live: format.number(size.live),
          })}
        </p>
      )}
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
        <Empty>{preview.exact ? t('segments.sampleEmpty') : preview.method === 'sampled' ? t('segments.sampleEmptySampled') : t('segments.sampleTooSlow')}</Empty>
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

/** The CSV export needs the credentials, so it is fetched (rows counted as they stream in) and handed to the browser as a download. */
function ExportLink({ segmentKey }: { segmentKey: string }) {
  const { t, format } = useI18n();
  const [error, setError] = useState<unknown>();
  const [progress, setProgress] = useState<{ rows: number; done: boolean } | null>(null);
  const download = async () => {
    setError(undefined);
    setProgress({ rows: 0, done: false });
    try {
      // The header line is not a member.
      const result = await downloadFile(`${api.segmentExportUrl(segmentKey)}?identifiers=email,phone,user_id`, `${segmentKey}.csv`, (_bytes, lines) =>
        setProgress({ rows: Math.max(0, lines - 1), done: false }),
      );
      setProgress({ rows: Math.max(0, result.lines - 1), done: true });
    } catch (caught) {
      setError(caught);
      setProgress(null);
    }
  };
  return (
    <>
      <button type="button" className="link" onClick={() => void download()}>
        {t('segments.exportCsv')}
      </button>
      {progress && (
        <span className="subtle" role="status" data-testid="export-progress">
          {' '}
          {t(progress.done ? 'segments.exported' : 'segments.exporting', { rows: format.number(progress.rows) })}
        </span>
      )}
      <ErrorNotice error={error} />
    </>
  );
}

function MembershipHistory({ segmentKey }: { segmentKey: string }) {
  const { t, format } = useI18n();
  const { resolved } = useRange();
  // Counted per day by the server (every transition of the range, however many).
  const history = useApi((signal) => api.segmentTrends(resolved, segmentKey, signal), [segmentKey, resolved.from, resolved.to]);
  const trend = history.data?.items[0];
  const days = trend ? daysOf(resolved, history.data!.timeZone) : [];
  const byDay = new Map((trend?.days ?? []).map((day) => [day.day, day]));
  const sizes = trend ? sizeSeries(trend.members, trend.changedSince, days, trend.days) : [];
  return (
    <Card title={t('segments.history')}>
      <ErrorNotice error={history.error} onRetry={history.reload} />
      {history.loading && <Loading />}
      {trend && trend.days.length === 0 && <Empty>{t('segments.noHistory')}</Empty>}
      {trend && trend.days.length > 0 && (
        <>
          <h3>{t('segments.sizeOverTime')}</h3>
          <BarChart label={t('segments.sizeOverTime')} format={format.number} data={days.map((day, i) => ({ label: format.day(day), value: sizes[i] ?? 0 }))} />
          <div className="grid-2">
            <div>
              <h3>{t('segments.entered')}</h3>
              <BarChart label={t('segments.entered')} format={format.number} data={days.map((day) => ({ label: format.day(day), value: byDay.get(day)?.entered ?? 0 }))} />
            </div>
            <div>
              <h3>{t('segments.exited')}</h3>
              <BarChart label={t('segments.exited')} format={format.number} data={days.map((day) => ({ label: format.day(day), value: byDay.get(day)?.exited ?? 0 }))} />
            </div>
          </div>
        </>
      )}
    </Card>
  );
}

/** Recompute now: the request lasts as long as the computation; the elapsed time shows meanwhile. */
function RecomputeButton({ segmentKey, onDone }: { segmentKey: string; onDone(): void }) {
  const { t, format } = useI18n();
  const [started, setStarted] = useState<number | null>(null);
  const [elapsed, setElapsed] = useState(0);
  const [result, setResult] = useState<string>('');
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    if (started === null) return;
    const timer = setInterval(() => setElapsed(Date.now() - started), 250);
    return () => clearInterval(timer);
  }, [started]);
  const run = async () => {
    setError(undefined);
    setResult('');
    setStarted(Date.now());
    setElapsed(0);
    try {
      const refreshed = await api.refreshSegment(segmentKey);
      setResult(t('segments.recomputed', { members: format.number(refreshed.segment.memberCount), segments: refreshed.computed.length }));
      onDone();
    } catch (caught) {
      setError(caught);
    } finally {
      setStarted(null);
    }
  };
  return (
    <>
      <button type="button" disabled={!may('segments.write') || started !== null} onClick={() => void run()}>
        {t('segments.recompute')}
      </button>
      {started !== null && <ProgressBar label={t('segments.recomputing')} value={null} text={t('segments.recomputingFor', { seconds: format.number(Math.floor(elapsed / 1000)) })} />}
      {result && <span className="notice-inline" role="status"> {result}</span>}
      <ErrorNotice error={error} />
    </>
  );
}
