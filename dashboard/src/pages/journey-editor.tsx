import { lazy, Suspense, useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from 'react';
import { api } from '../api/endpoints.ts';
import type { Journey, JourneyDefinition, JourneyInstance, JourneyProblem, Template } from '../api/types.ts';
import { ConfirmDialog, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { NodeEditor, RulesEditor } from '../components/node-editor.tsx';
import { TemplateEditor } from '../components/template-editor.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import {
  ADDABLE_KINDS,
  addNodeAfter,
  connect,
  liveNumbers,
  mergeProblems,
  problemsByNode,
  removeNode,
  replaceNode,
  UNCONNECTED,
  withPositions,
} from '../journey-model.ts';
import { useRange } from '../range-context.tsx';
import { Link } from '../router.tsx';
import { canEditJourneys, JOURNEY_STATUS } from './journeys.tsx';

const JourneyCanvas = lazy(() => import('../components/journey-canvas.tsx'));

type Action = 'publish' | 'migrate' | 'pause' | 'resume' | 'stop';
const LIVE_REFRESH_MS = 5000;
const NO_PROBLEMS = new Map<string, JourneyProblem[]>();

/** The definition without positions: what validation depends on. */
const structureOf = (definition: JourneyDefinition) => JSON.stringify({ ...definition, nodes: definition.nodes.map(({ position: _p, ...node }) => node) });

/** Goal conversion of treatment vs holdout, and the uplift with its confidence interval. */
function Results({ journey }: { journey: Journey }) {
  const { t, format } = useI18n();
  const { resolved } = useRange();
  const results = useApi((signal) => api.journeyResults(journey.id, resolved, signal), [journey.id, resolved.from, resolved.to]);
  if (results.error) return <ErrorNotice error={results.error} onRetry={results.reload} />;
  if (!results.data) return <Loading />;
  const { groups } = results.data;
  const comparison = groups.comparisons[0];
  return (
    <div data-testid="journey-results">
      {groups.variants.length === 0 ? (
        <Empty>{t('journeys.results.empty')}</Empty>
      ) : (
        <table className="table compact">
          <thead>
            <tr>
              <th scope="col">{t('journeys.results.group')}</th>
              <th scope="col" className="num">
                {t('journeys.results.instances')}
              </th>
              <th scope="col" className="num">
                {t('journeys.numbers.converted')}
              </th>
              <th scope="col" className="num">
                {t('journeys.results.rate')}
              </th>
            </tr>
          </thead>
          <tbody>
            {groups.variants.map((variant) => (
              <tr key={variant.variant}>
                <td>{variant.variant === 'holdout' ? t('journeys.results.holdout') : variant.variant === 'treatment' ? t('journeys.results.treatment') : variant.variant}</td>
                <td className="num">{format.number(variant.total)}</td>
                <td className="num">{format.number(variant.converted)}</td>
                <td className="num">{format.percent(variant.conversionRate)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {comparison ? (
        <p data-testid="journey-uplift">
          {t('journeys.results.uplift', {
            absolute: format.percent(comparison.absoluteUplift),
            relative: comparison.relativeUplift === null ? '—' : format.percent(comparison.relativeUplift),
            low: format.percent(comparison.confidenceInterval[0]),
            high: format.percent(comparison.confidenceInterval[1]),
            p: comparison.pValue.toFixed(3),
          })}{' '}
          <span className="chip">{comparison.decision}</span>
        </p>
      ) : (
        <p className="help">{t('journeys.results.noHoldout')}</p>
      )}
      {results.data.warnings.map((warning, i) => (
        <p key={i} className="help">
          {warning.message}
        </p>
      ))}
    </div>
  );
}

/** One instance: where it is, when it wakes, the path it took, the messages it was sent. */
function InstanceDetail(props: { journeyKey: string; instanceId: string; refreshTick: number; editable: boolean; onChanged(): void }) {
  const { journeyKey, instanceId, editable, onChanged } = props;
  const { t, format } = useI18n();
  const detail = useApi((signal) => api.journeyInstance(journeyKey, instanceId, signal), [journeyKey, instanceId, props.refreshTick]);
  const messages = useApi((signal) => api.instanceMessages(instanceId, signal), [instanceId, props.refreshTick]);
  const [confirm, setConfirm] = useState(false);
  const [error, setError] = useState<unknown>();
  if (detail.error) return <ErrorNotice error={detail.error} onRetry={detail.reload} />;
  if (!detail.data) return <Loading />;
  const { instance, path } = detail.data;
  const remove = async () => {
    try {
      await api.removeInstance(journeyKey, instanceId);
      setConfirm(false);
      detail.reload();
      onChanged();
    } catch (caught) {
      setError(caught);
      setConfirm(false);
    }
  };
  return (
    <section className="card" aria-label={t('journeys.instance.title')} data-testid="instance-detail">
      <header className="card-header">
        <h2>{t('journeys.instance.title')}</h2>
        <button type="button" onClick={detail.reload}>
          {t('journeys.refresh')}
        </button>
      </header>
      <dl className="key-values">
        <div>
          <dt>{t('journeys.instance.profile')}</dt>
          <dd>
            <Link to={`/profiles/${instance.profileId}`}>{instance.profileId}</Link>
          </dd>
        </div>
        <div>
          <dt>{t('common.status')}</dt>
          <dd data-testid="instance-status">{t(`journeys.instanceStatus.${instance.status}`)}</dd>
        </div>
        <div>
          <dt>{t('journeys.instance.currentNode')}</dt>
          <dd data-testid="instance-node">{instance.currentNode}</dd>
        </div>
        <div>
          <dt>{t('journeys.instance.nextWake')}</dt>
          <dd data-testid="instance-wake">{instance.nextDueAt ? format.dateTime(instance.nextDueAt) : '—'}</dd>
        </div>
        <div>
          <dt>{t('journeys.instance.group')}</dt>
          <dd>{t(instance.group === 'holdout' ? 'journeys.results.holdout' : 'journeys.results.treatment')}</dd>
        </div>
        <div>
          <dt>{t('journeys.version')}</dt>
          <dd>v{instance.version}</dd>
        </div>
        {instance.endReason && (
          <div>
            <dt>{t('journeys.instance.endReason')}</dt>
            <dd>
              {instance.endReason}
              {instance.endDetail ? ` — ${instance.endDetail}` : ''}
            </dd>
          </div>
        )}
      </dl>
      <h3>{t('journeys.instance.path')}</h3>
      <ol className="instance-path" data-testid="instance-path">
        {path.map((step) => (
          <li key={step.step}>
            <code>{step.nodeId}</code> <span className="chip">{step.outcome}</span> <span className="subtle">{format.dateTime(step.at)}</span> <span className="subtle">v{step.version}</span>
            {step.detail && Object.keys(step.detail).length > 0 && <pre>{JSON.stringify(step.detail)}</pre>}
          </li>
        ))}
      </ol>
      <h3>{t('journeys.instance.messages')}</h3>
      <ErrorNotice error={messages.error} />
      {messages.data && messages.data.items.length === 0 && <p className="help">{t('journeys.instance.noMessages')}</p>}
      {messages.data && messages.data.items.length > 0 && (
        <ul className="plain-list" data-testid="instance-messages">
          {messages.data.items.map((message) => (
            <li key={message.messageId}>
              {message.channel} · <code>{message.templateKey}</code> · <span className="chip">{message.status}</span> {message.reason ?? ''} <span className="subtle">{format.dateTime(message.createdAt)}</span>
            </li>
          ))}
        </ul>
      )}
      {editable && instance.status === 'active' && (
        <button type="button" className="danger" onClick={() => setConfirm(true)}>
          {t('journeys.instance.remove')}
        </button>
      )}
      <ErrorNotice error={error} />
      <ConfirmDialog open={confirm} message={t('journeys.instance.removeConfirm')} onConfirm={() => void remove()} onCancel={() => setConfirm(false)} />
    </section>
  );
}

function Instances({ journey, editable, refreshTick, onOpen, openId }: { journey: Journey; editable: boolean; refreshTick: number; onOpen(instance: JourneyInstance | null): void; openId: string | null }) {
  const { t, format } = useI18n();
  const [status, setStatus] = useState('');
  const list = useApi((signal) => api.journeyInstances(journey.key, { status, limit: 50 }, signal), [journey.key, status, refreshTick]);
  const [profile, setProfile] = useState('');
  const [entryError, setEntryError] = useState<unknown>();
  const [entryNote, setEntryNote] = useState('');
  const enter = async (event: FormEvent) => {
    event.preventDefault();
    setEntryError(undefined);
    setEntryNote('');
    try {
      const result = await api.enterJourney(journey.key, profile.trim());
      setEntryNote(result.refused ? t('journeys.entry.refused', { reason: result.refused }) : t('journeys.entry.entered'));
      list.reload();
    } catch (error) {
      setEntryError(error);
    }
  };
  const live = journey.status === 'published';
  return (
    <section className="card" aria-label={t('journeys.instances')}>
      <header className="card-header">
        <h2>{t('journeys.instances')}</h2>
        <label>
          {t('journeys.instanceFilter')}
          <select value={status} onChange={(event) => setStatus(event.target.value)}>
            <option value="">{t('journeys.instanceStatus.all')}</option>
            {(['active', 'completed', 'converted', 'exited'] as const).map((value) => (
              <option key={value} value={value}>
                {t(`journeys.instanceStatus.${value}`)}
              </option>
            ))}
          </select>
        </label>
      </header>
      {editable && live && (
        <form className="form-actions" onSubmit={(event) => void enter(event)}>
          <label>
            {t('journeys.entry.profile')}
            <input value={profile} required placeholder="email:lin@example.cn" onChange={(event) => setProfile(event.target.value)} />
          </label>
          <button type="submit">{t('journeys.entry.submit')}</button>
          {entryNote && (
            <span className="notice-inline" role="status" data-testid="entry-note">
              {entryNote}
            </span>
          )}
        </form>
      )}
      <ErrorNotice error={entryError} />
      <ErrorNotice error={list.error} onRetry={list.reload} />
      {list.data && list.data.items.length === 0 && <Empty>{t(live ? 'journeys.noInstancesLive' : 'journeys.noInstances')}</Empty>}
      {list.data && list.data.items.length > 0 && (
        <table className="table compact" data-testid="instance-list">
          <thead>
            <tr>
              <th scope="col">{t('journeys.instance.profile')}</th>
              <th scope="col">{t('common.status')}</th>
              <th scope="col">{t('journeys.instance.currentNode')}</th>
              <th scope="col">{t('journeys.instance.nextWake')}</th>
              <th scope="col">{t('journeys.instance.group')}</th>
              <th scope="col">{t('journeys.instance.entered')}</th>
              <th scope="col">
                <span className="visually-hidden">{t('journeys.instance.open')}</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {list.data.items.map((instance) => (
              <tr key={instance.id} aria-selected={instance.id === openId}>
                <td>
                  <code>{instance.profileId.slice(0, 8)}</code>
                </td>
                <td>{t(`journeys.instanceStatus.${instance.status}`)}</td>
                <td>
                  <code>{instance.currentNode}</code>
                </td>
                <td>{instance.nextDueAt ? format.dateTime(instance.nextDueAt) : '—'}</td>
                <td>{t(instance.group === 'holdout' ? 'journeys.results.holdout' : 'journeys.results.treatment')}</td>
                <td>{format.dateTime(instance.enteredAt)}</td>
                <td>
                  <button type="button" className="link" onClick={() => onOpen(instance)}>
                    {t('journeys.instance.open')}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function JourneyEditorPage({ journeyKey }: { journeyKey: string }) {
  const { t, format } = useI18n();
  const loaded = useApi((signal) => api.journey(journeyKey, signal), [journeyKey]);
  const [journey, setJourney] = useState<Journey | null>(null);
  const [definition, setDefinition] = useState<JourneyDefinition | null>(null);
  const [apiProblems, setApiProblems] = useState<JourneyProblem[]>([]);
  const [dirty, setDirty] = useState(false);
  const [selected, setSelected] = useState<string | null>(null);
  const [confirm, setConfirm] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>();
  const [notice, setNotice] = useState<{ key: MessageKey; vars?: Record<string, string | number> } | null>(null);
  const [template, setTemplate] = useState<{ key: string; channel: Template['channel'] } | null>(null);
  const [refresh, setRefresh] = useState(0);
  /** A published version shown read-only on the canvas instead of the draft (null: the draft). */
  const [viewing, setViewing] = useState<number | null>(null);
  /** Template warnings (unknown traits): shown, never blocking. */
  const [warnings, setWarnings] = useState<JourneyProblem[]>([]);
  const [openInstance, setOpenInstance] = useState<JourneyInstance | null>(null);
  const [tick, setTick] = useState(0);
  const canEdit = canEditJourneys() && journey?.status !== 'archived';
  const editable = canEdit && viewing === null;
  const templates = useApi((signal) => api.templates(signal), []);
  const segments = useApi((signal) => api.segments({ limit: 200 }, signal), []);

  useEffect(() => {
    if (!loaded.data) return;
    setJourney(loaded.data);
    setDefinition(loaded.data.definition);
    setApiProblems(loaded.data.problems);
    setWarnings(loaded.data.warnings);
    setDirty(false);
  }, [loaded.data]);

  // Validate the drawn definition as it changes (positions aside): problems appear on their nodes.
  const structure = definition ? structureOf(definition) : '';
  const validated = useRef('');
  useEffect(() => {
    if (!definition || !journey || structure === validated.current) return;
    if (!validated.current) {
      validated.current = structure;
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(() => {
      api.validateJourney(journey.key, definition, controller.signal).then(
        (answer) => {
          validated.current = structure;
          setApiProblems(answer.problems);
          setWarnings(answer.warnings);
        },
        (error: unknown) => !controller.signal.aborted && setActionError(error),
      );
    }, 400);
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [structure]);

  const live = journey ? journey.currentVersion !== null : false;
  const stats = useApi((signal) => (journey && live ? api.journeyStats(journey.key, signal) : Promise.resolve(undefined)), [journey?.key, live, tick]);
  useEffect(() => {
    if (!live || journey?.status !== 'published') return;
    const timer = setInterval(() => setTick((value) => value + 1), LIVE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [live, journey?.status]);

  const versions = useApi((signal) => (journey ? api.journeyVersions(journey.key, signal) : Promise.resolve(undefined)), [journey?.key, journey?.currentVersion]);
  const numbers = useMemo(() => liveNumbers(stats.data), [stats.data]);
  const problems = useMemo(() => (definition ? mergeProblems(definition, apiProblems) : []), [definition, apiProblems]);
  const byNode = useMemo(() => (definition ? problemsByNode(definition, problems) : new Map<string, JourneyProblem[]>()), [definition, problems]);

  const change = useCallback((next: JourneyDefinition) => {
    setDefinition(next);
    setDirty(true);
    setNotice(null);
  }, []);

  if (loaded.error) return <ErrorNotice error={loaded.error} onRetry={loaded.reload} />;
  if (!journey || !definition) return <Loading />;

  const save = async (): Promise<boolean> => {
    setBusy(true);
    setActionError(undefined);
    try {
      const saved = await api.updateJourney(journey.key, { definition });
      setJourney(saved);
      setApiProblems(saved.problems);
      setWarnings(saved.warnings);
      validated.current = structureOf(saved.definition);
      setDirty(false);
      setNotice({ key: 'journeys.saved' });
      return true;
    } catch (error) {
      setActionError(error);
      return false;
    } finally {
      setBusy(false);
    }
  };

  const run = async (action: Action) => {
    setConfirm(null);
    if (action === 'publish' && dirty && !(await save())) return;
    setBusy(true);
    setActionError(undefined);
    try {
      if (action === 'publish') {
        const result = await api.publishJourney(journey.key);
        setJourney(result.journey);
        setNotice({ key: 'journeys.published', vars: { version: result.version, stayed: result.stayed, warnings: result.warnings.length } });
      } else if (action === 'migrate') {
        const result = await api.migrateJourney(journey.key);
        setNotice({ key: 'journeys.migrated', vars: { version: result.version, migrated: result.migrated } });
      } else if (action === 'pause') {
        setJourney(await api.pauseJourney(journey.key));
        setNotice({ key: 'journeys.pausedNotice' });
      } else if (action === 'resume') {
        setJourney(await api.resumeJourney(journey.key));
        setNotice({ key: 'journeys.resumedNotice' });
      } else {
        const result = await api.stopJourney(journey.key);
        setJourney(result.journey);
        setNotice({ key: 'journeys.stoppedNotice', vars: { stopped: result.stopped } });
      }
      setTick((value) => value + 1);
    } catch (error) {
      setActionError(error);
    } finally {
      setBusy(false);
    }
  };

  const addNode = (kind: (typeof ADDABLE_KINDS)[number]) => {
    const added = addNodeAfter(definition, kind, selected, templates.data?.items[0]?.key);
    change(added.definition);
    setSelected(added.id);
  };

  const shownVersion = viewing === null ? undefined : versions.data?.items.find((item) => item.version === viewing);
  const shown = shownVersion?.definition ?? definition;
  const selectedNode = shown.nodes.find((node) => node.id === selected) ?? null;
  const status = journey.status;
  // Running instances of earlier versions stay there unless the operator moves them.
  const onEarlier = (versions.data?.items ?? []).filter((item) => !item.live).reduce((sum, item) => sum + item.instances.active, 0);
  const lifecycle: Action[] = status === 'draft' ? ['publish'] : status === 'published' ? ['publish', 'pause', 'stop'] : status === 'paused' ? ['resume', 'publish', 'stop'] : [];
  const actions: Action[] = onEarlier > 0 && (status === 'published' || status === 'paused') ? [...lifecycle.slice(0, 1), 'migrate', ...lifecycle.slice(1)] : lifecycle;
  const confirmText: Record<Action, string> = {
    publish: t('journeys.confirm.publish', { version: (journey.currentVersion ?? 0) + 1 }),
    migrate: t('journeys.confirm.migrate', { count: onEarlier, version: journey.currentVersion ?? 0 }),
    pause: t('journeys.confirm.pause'),
    resume: t('journeys.confirm.resume'),
    stop: t('journeys.confirm.stop'),
  };
  const journeyProblems = byNode.get('') ?? [];

  return (
    <>
      <div className="page-head">
        <div>
          <Link to="/journeys">← {t('journeys.title')}</Link>
          <h1>{journey.name}</h1>
          <p className="subtle">
            <code>{journey.key}</code> · <span className={`chip status-${status}`} data-testid="journey-status">{t(JOURNEY_STATUS[status])}</span> ·{' '}
            <span data-testid="journey-version">{journey.currentVersion === null ? t('journeys.neverPublished') : t('journeys.liveVersion', { version: journey.currentVersion })}</span>
            {dirty && <> · {t('journeys.unsaved')}</>}
          </p>
          {(versions.data?.items.length ?? 0) > 0 && (
            <div className="form-actions">
              <label>
                {t('journeys.versions')}
                <select data-testid="journey-versions" value={viewing ?? ''} onChange={(event) => setViewing(event.target.value ? Number(event.target.value) : null)}>
                  <option value="">{t('journeys.versions.draft')}</option>
                  {versions.data!.items.map((item) => (
                    <option key={item.version} value={item.version}>
                      {t('journeys.versions.item', { version: item.version, at: format.dateTime(item.publishedAt), active: item.instances.active })}
                    </option>
                  ))}
                </select>
              </label>
              {viewing !== null && shownVersion && canEdit && (
                <button
                  type="button"
                  onClick={() => {
                    change(shownVersion.definition);
                    setViewing(null);
                  }}
                >
                  {t('journeys.versions.restore', { version: viewing })}
                </button>
              )}
            </div>
          )}
        </div>
        <div className="form-actions">
          {editable && (
            <button type="button" disabled={busy || !dirty} onClick={() => void save()}>
              {t('journeys.saveDraft')}
            </button>
          )}
          {editable &&
            actions.map((action) => (
              <button
                key={action}
                type="button"
                className={action === 'stop' ? 'danger' : action === 'publish' ? 'primary' : undefined}
                disabled={busy || (action === 'publish' && problems.length > 0)}
                onClick={() => setConfirm(action)}
              >
                {t(`journeys.action.${action}`)}
              </button>
            ))}
        </div>
      </div>
      {notice && (
        <p className="notice" role="status" data-testid="journey-notice">
          {t(notice.key, notice.vars)}
        </p>
      )}
      <ErrorNotice error={actionError} />
      {problems.length > 0 && (
        <p className="error-inline" data-testid="journey-problem-count">
          {t('journeys.problemsBlockPublish', { count: problems.length })}
        </p>
      )}
      {journeyProblems.length > 0 && (
        <ul className="field-problems">
          {journeyProblems.map((problem, i) => (
            <li key={i} className="error-inline">
              {problem.field}: {problem.message}
            </li>
          ))}
        </ul>
      )}
      {warnings.length > 0 && (
        <ul className="field-problems" data-testid="journey-warnings">
          {warnings.map((warning, i) => (
            <li key={i} className="help">
              {t('journeys.warning', { node: warning.node ?? '', message: warning.message })}
            </li>
          ))}
        </ul>
      )}
      {viewing !== null && (
        <p className="notice" role="status" data-testid="viewing-version">
          {t('journeys.versions.viewing', { version: viewing })}
        </p>
      )}
      {editable && (
        <div className="palette" role="toolbar" aria-label={t('journeys.palette')}>
          {ADDABLE_KINDS.map((kind) => (
            <button key={kind} type="button" onClick={() => addNode(kind)}>
              + {t(`journeys.kind.${kind}`)}
            </button>
          ))}
          <span className="help">{t('journeys.paletteHelp')}</span>
        </div>
      )}
      <div className="journey-layout">
        <Suspense fallback={<Loading />}>
          <JourneyCanvas
            definition={shown}
            problems={viewing === null ? byNode : NO_PROBLEMS}
            numbers={numbers}
            live={live}
            selected={selected}
            currentNode={openInstance?.currentNode ?? null}
            editable={editable}
            onSelect={setSelected}
            onMove={(id, at) => setDefinition((current) => (current ? withPositions(current, new Map([[id, at]])) : current))}
            onConnect={(source, field, target) => change(connect(definition, source, field, target))}
            onDisconnect={(source, field) => change(connect(definition, source, field, UNCONNECTED))}
            onRemove={(id) => {
              change(removeNode(definition, id));
              if (selected === id) setSelected(null);
            }}
          />
        </Suspense>
        <aside className="journey-side">
          {template ? (
            <TemplateEditor
              key={template.key}
              templateKey={template.key}
              channel={template.channel}
              editable={editable}
              onClose={() => setTemplate(null)}
              // The send nodes' template problems change with the template: ask again.
              onSaved={() => void api.validateJourney(journey.key, definition).then((answer) => {
                  setApiProblems(answer.problems);
                  setWarnings(answer.warnings);
                }, setActionError)}
            />
          ) : selectedNode ? (
            <NodeEditor
              key={selectedNode.id}
              node={selectedNode}
              problems={byNode.get(selectedNode.id) ?? []}
              editable={editable}
              templates={templates.data}
              segmentKeys={(segments.data?.items ?? []).map((segment) => segment.key)}
              onChange={(node) => {
                change(replaceNode(definition, selectedNode.id, node));
                if (node.id !== selectedNode.id) setSelected(node.id);
              }}
              onRemove={() => {
                change(removeNode(definition, selectedNode.id));
                setSelected(null);
              }}
              onEditTemplate={(key, channel) => setTemplate({ key, channel: channel as Template['channel'] })}
            />
          ) : (
            <>
              <p className="help">{t('journeys.selectHelp')}</p>
              <RulesEditor definition={shown} problems={viewing === null ? problems : []} editable={editable} onChange={change} />
            </>
          )}
        </aside>
      </div>
      {live && (
        <div className="grid-2">
          <section className="card" aria-label={t('journeys.results.title')}>
            <header className="card-header">
              <h2>{t('journeys.results.title')}</h2>
              <button
                type="button"
                onClick={() => {
                  setRefresh((value) => value + 1);
                  setTick((value) => value + 1);
                }}
              >
                {t('journeys.refresh')}
              </button>
            </header>
            <ErrorNotice error={stats.error} />
            <Results key={refresh} journey={journey} />
          </section>
          <Instances journey={journey} editable={editable} refreshTick={tick} onOpen={setOpenInstance} openId={openInstance?.id ?? null} />
        </div>
      )}
      {!live && <Empty>{t('journeys.notLiveHelp')}</Empty>}
      {openInstance && (
        <InstanceDetail key={openInstance.id} journeyKey={journey.key} instanceId={openInstance.id} refreshTick={tick} editable={editable} onChanged={() => setTick((value) => value + 1)} />
      )}
      <ConfirmDialog open={confirm !== null} message={confirm ? confirmText[confirm] : ''} busy={busy} onConfirm={() => confirm && void run(confirm)} onCancel={() => setConfirm(null)} />
    </>
  );
}
