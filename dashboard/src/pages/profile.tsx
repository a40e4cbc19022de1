import { useState } from 'react';
import { api } from '../api/endpoints.ts';
import type { IdentityGraph, Profile, StoredEvent, VerboseTrait } from '../api/types.ts';
import { Card, ConfirmDialog, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { IdentityGraphView } from '../components/identity-graph.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { useRange } from '../range-context.tsx';
import { Link } from '../router.tsx';
import { may } from '../permissions.ts';
import { EVENT_TYPE_NAMES, SOURCE_ICONS, SOURCE_KIND_NAMES, type SourceKind } from '../vocabulary.ts';
import { displayName } from './profiles.tsx';

type Action = { kind: 'unmerge' | 'unbind'; identifier: { type: string; value: string } };

function isVerbose(value: unknown): value is VerboseTrait {
  return !!value && typeof value === 'object' && 'source' in value && 'observedAt' in value && 'history' in value;
}

const show = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value));

/** The 360° view of one profile. */
export function ProfilePage({ profileRef }: { profileRef: string }) {
  const { t, format } = useI18n();
  const profile = useApi((signal) => api.profile(profileRef, signal), [profileRef]);
  const graph = useApi((signal) => api.identity(profileRef, signal), [profileRef]);
  const memberships = useApi((signal) => api.profileSegments(profileRef, signal), [profileRef]);
  const [action, setAction] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<unknown>();
  const [notice, setNotice] = useState('');

  if (profile.error) return <ErrorNotice error={profile.error} onRetry={profile.reload} />;
  if (!profile.data) return <Loading />;
  const data = profile.data;
  const plainTraits = Object.fromEntries(Object.entries(data.traits).map(([key, trait]) => [key, isVerbose(trait) ? trait.value : trait]));
  const sourceKinds = new Map<string, string>();
  for (const identifier of graph.data?.identifiers ?? []) if (identifier.source) sourceKinds.set(identifier.source.id, identifier.source.kind);
  const identifierText = (identifier: { type: string; value: string }) => `${identifier.type}: ${identifier.value}`;

  const perform = async () => {
    if (!action) return;
    setBusy(true);
    setActionError(undefined);
    try {
      if (action.kind === 'unmerge') {
        const result = await api.unmerge(data.id, action.identifier);
        setNotice(t('profile.unmerged', { id: result.newProfileId.slice(0, 8), events: format.number(result.movedEvents) }));
      } else {
        await api.unbind(data.id, action.identifier);
        setNotice(t('profile.unbound', { identifier: identifierText(action.identifier) }));
      }
      setAction(null);
      profile.reload();
      graph.reload();
      memberships.reload();
    } catch (error) {
      setActionError(error);
      setAction(null);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <p>
        <Link to="/profiles">← {t('common.back')}</Link>
      </p>
      <h1 data-testid="profile-name">{displayName(plainTraits, data.id, data.identifiers)}</h1>
      <p className="subtle">
        {data.id} · {t('profile.firstSeen')} {format.dateTime(data.firstSeen)} · {t('profiles.lastSeen')} {format.dateTime(data.lastSeen)}
      </p>
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <ErrorNotice error={actionError} />
      <div className="grid-2">
        <Card title={t('profile.traits')}>
          <TraitTable traits={data.traits} />
        </Card>
        <Card title={t('profile.identifiers')}>
          <ul className="identifier-list">
            {data.identifiers.map((identifier) => (
              <li key={`${identifier.type}:${identifier.value}`}>
                <span className="chip">{identifier.type}</span> {identifier.value}
                <small className="subtle">
                  {' '}
                  {identifier.source?.name ?? '—'} · {t('profile.linkedVia', { via: identifier.linkedBy.via })} · {format.dateTime(identifier.boundAt)}
                </small>
                <span className="row-actions" hidden={!may('profiles.write')}>
                  {data.identifiers.length > 1 && (
                    <button type="button" onClick={() => setAction({ kind: 'unmerge', identifier })}>
                      {t('profile.unmerge')}
                    </button>
                  )}
                  <button type="button" onClick={() => setAction({ kind: 'unbind', identifier })}>
                    {t('profile.unbind')}
                  </button>
                </span>
              </li>
            ))}
          </ul>
        </Card>
      </div>
      <div className="grid-2">
        <Card title={t('profile.graph')}>
          <ErrorNotice error={graph.error} onRetry={graph.reload} />
          {graph.data ? <IdentityGraphView graph={graph.data} label={t('profile.graph')} /> : !graph.error && <Loading />}
        </Card>
        <Card title={t('profile.merges')}>{graph.data && <MergeHistory graph={graph.data} />}</Card>
      </div>
      <div className="grid-3">
        <Card title={`${t('profile.segments')} / ${t('profile.tags')}`}>
          <ErrorNotice error={memberships.error} />
          {memberships.data && memberships.data.segments.length === 0 && <Empty>{t('profile.noSegments')}</Empty>}
          <ul className="chips" data-testid="profile-segments">
            {memberships.data?.segments.map((segment) => (
              <li key={segment.key}>
                <Link to={`/segments/${encodeURIComponent(segment.key)}`} className={segment.isTag ? 'chip tag' : 'chip'}>
                  {segment.name}
                </Link>{' '}
                <small className="subtle">{format.date(segment.enteredAt)}</small>
              </li>
            ))}
          </ul>
        </Card>
        <Card title={t('profile.computed')}>
          <ComputedValues values={data.computed} models={false} empty={t('profile.noComputed')} />
          <h3>{t('profile.scores')}</h3>
          <ComputedValues values={data.computed} models empty={t('profile.noScores')} />
        </Card>
        <Card title={t('profile.consent')}>
          {Object.keys(data.consent).length === 0 ? (
            <Empty>{t('profile.noConsent')}</Empty>
          ) : (
            <dl className="key-values" data-testid="profile-consent">
              {Object.entries(data.consent).map(([category, consent]) => (
                <div key={category}>
                  <dt>{category}</dt>
                  <dd title={format.dateTime(consent.observedAt)}>
                    <span className={consent.granted ? 'status active' : 'status disabled'}>{consent.granted ? t('profile.granted') : t('profile.denied')}</span>
                  </dd>
                </div>
              ))}
            </dl>
          )}
        </Card>
      </div>
      <Card title={t('profile.journeys')}>
        {data.journeys.length === 0 ? (
          <Empty>{t('profile.noJourneys')}</Empty>
        ) : (
          <table className="table compact" data-testid="profile-journeys">
            <thead>
              <tr>
                <th scope="col">{t('profile.journey')}</th>
                <th scope="col">{t('profile.currentStep')}</th>
                <th scope="col">{t('profile.entered')}</th>
                <th scope="col">{t('profile.next')}</th>
              </tr>
            </thead>
            <tbody>
              {data.journeys.map((journey) => (
                <tr key={journey.instanceId}>
                  <td>
                    <Link to={`/journeys/${encodeURIComponent(journey.journeyKey)}`}>{journey.journeyName}</Link> <small className="subtle">v{journey.version}</small>
                    {journey.holdout && <span className="chip">{t('profile.holdout')}</span>}
                  </td>
                  <td>
                    <code>{journey.nodeId}</code> {journey.nodeKind && <span className="chip">{journey.nodeKind}</span>}{' '}
                    <small className="subtle">{journey.phase === 'wait' ? t('profile.waiting') : t('profile.arriving')} · {t('profile.steps', { n: journey.stepCount })}</small>
                  </td>
                  <td>{format.dateTime(journey.enteredAt)}</td>
                  <td>{format.dateTime(journey.dueAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
      <Card title={t('profile.timeline')}>
        <ProfileTimeline profile={data} sourceKinds={sourceKinds} />
      </Card>
      <ConfirmDialog
        open={action !== null}
        busy={busy}
        message={action ? t(action.kind === 'unmerge' ? 'profile.unmergeConfirm' : 'profile.unbindConfirm', { identifier: identifierText(action.identifier) }) : ''}
        onCancel={() => setAction(null)}
        onConfirm={() => void perform()}
      />
    </>
  );
}

function TraitTable({ traits }: { traits: Profile['traits'] }) {
  const { t, format } = useI18n();
  const entries = Object.entries(traits).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <Empty>{t('common.none')}</Empty>;
  return (
    <table className="table compact" data-testid="traits">
      <tbody>
        {entries.map(([key, trait]) => {
          const verbose = isVerbose(trait) ? trait : undefined;
          const provenance = verbose
            ? t('profile.traitProvenance', { source: `${verbose.source.name} (${verbose.source.kind})`, time: format.dateTime(verbose.observedAt) })
            : undefined;
          return (
            <tr key={key}>
              <th scope="row">{key}</th>
              <td>
                <span className="has-tip" tabIndex={provenance ? 0 : undefined} title={provenance} aria-label={provenance ? `${show(verbose?.value)} — ${provenance}` : undefined}>
                  {show(verbose ? verbose.value : trait)}
                  {provenance && (
                    <span className="tip" role="tooltip">
                      {provenance}
                      {verbose && verbose.history.length > 1 && ` · ${verbose.history.length}×`}
                    </span>
                  )}
                </span>
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

/** Values written by computed traits, or by models (source name model:<key>): value, owner, time. */
function ComputedValues({ values, models, empty }: { values: Profile['computed']; models: boolean; empty: string }) {
  const { format } = useI18n();
  const entries = Object.entries(values).filter(([, value]) => value.source.startsWith('model:') === models);
  if (entries.length === 0) return <Empty>{empty}</Empty>;
  return (
    <dl className="key-values" data-testid={models ? 'profile-scores' : 'profile-computed'}>
      {entries.map(([key, value]) => (
        <div key={key}>
          <dt title={`${value.source} · ${format.dateTime(value.observedAt)}`}>{key}</dt>
          <dd>{typeof value.value === 'number' ? format.number(Math.round(value.value * 1000) / 1000) : show(value.value)}</dd>
        </div>
      ))}
    </dl>
  );
}

function MergeHistory({ graph }: { graph: IdentityGraph }) {
  const { t, format } = useI18n();
  const entries = [...graph.merges, ...graph.splitFrom].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  if (entries.length === 0) return <Empty>{t('profile.noMerges')}</Empty>;
  return (
    <ol className="merge-history" data-testid="merge-history">
      {entries.map((merge) => (
        <li key={merge.id} className={merge.undoneAt ? 'undone' : undefined}>
          <strong>{merge.kind === 'unmerge' ? t('profile.splitKind') : t('profile.mergeKind', { kind: merge.kind })}</strong>{' '}
          {merge.cause.identifier && t('profile.mergeBecause', { identifier: `${merge.cause.identifier.type}: ${merge.cause.identifier.value}` })}
          {merge.score !== null && ` (p = ${format.percent(merge.score)})`}
          <br />
          <small className="subtle">
            {format.dateTime(merge.createdAt)} · {merge.absorbedIds.map((id) => id.slice(0, 8)).join(', ')}
            {merge.undoneAt && ` · ${t('profile.undone')} ${format.dateTime(merge.undoneAt)}`}
          </small>
        </li>
      ))}
    </ol>
  );
}

function eventTitle(event: StoredEvent): string {
  return event.event ?? event.name ?? event.type;
}

function ProfileTimeline({ profile, sourceKinds }: { profile: Profile; sourceKinds: Map<string, string> }) {
  const { t, format } = useI18n();
  const { resolved } = useRange();
  const [type, setType] = useState('');
  const [sourceKind, setSourceKind] = useState('');
  const [eventName, setEventName] = useState('');
  const [pages, setPages] = useState<{ items: StoredEvent[]; cursor: string | null }>({ items: [], cursor: null });
  const filters = { type: type || undefined, sourceKind: sourceKind || undefined, event: eventName.trim() || undefined, since: resolved.from, until: resolved.to, limit: 50 };
  const first = useApi(async (signal) => {
    const page = await api.timeline(profile.id, filters, signal);
    setPages({ items: page.items, cursor: page.nextCursor });
    return page;
  }, [profile.id, JSON.stringify(filters)]);
  const [moreError, setMoreError] = useState<unknown>();
  const more = async () => {
    if (!pages.cursor) return;
    try {
      const page = await api.timeline(profile.id, { ...filters, cursor: pages.cursor });
      setPages({ items: [...pages.items, ...page.items], cursor: page.nextCursor });
    } catch (error) {
      setMoreError(error);
    }
  };
  return (
    <>
      <div className="filters">
        <label>
          {t('profile.filterType')}
          <select value={type} onChange={(event) => setType(event.target.value)}>
            <option value="">{t('profile.allTypes')}</option>
            {EVENT_TYPE_NAMES.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </label>
        <label>
          {t('profile.filterSource')}
          <select value={sourceKind} onChange={(event) => setSourceKind(event.target.value)}>
            <option value="">{t('profile.allSources')}</option>
            {SOURCE_KIND_NAMES.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </label>
        <label>
          {t('profile.filterEvent')}
          <input value={eventName} onChange={(event) => setEventName(event.target.value)} placeholder="Order Completed" />
        </label>
      </div>
      <ErrorNotice error={first.error} onRetry={first.reload} />
      {first.loading && pages.items.length === 0 && <Loading />}
      {!first.loading && pages.items.length === 0 && !first.error && <Empty>{t('profile.noEvents')}</Empty>}
      <ol className="timeline" data-testid="timeline">
        {pages.items.map((event) => {
          const kind = sourceKinds.get(event.sourceId) as SourceKind | undefined;
          return (
            <li key={event.messageId}>
              <span className="source-icon" title={kind ?? 'source'} aria-label={kind ?? 'source'}>
                {kind ? SOURCE_ICONS[kind] : '•'}
              </span>
              <span className="event-type">{event.type}</span>
              <strong>{eventTitle(event)}</strong>
              <time dateTime={event.timestamp}>{format.dateTime(event.timestamp)}</time>
              {event.properties && Object.keys(event.properties).length > 0 && (
                <details>
                  <summary>{Object.keys(event.properties).slice(0, 4).join(', ')}</summary>
                  <pre>{JSON.stringify(event.properties, null, 2)}</pre>
                </details>
              )}
            </li>
          );
        })}
      </ol>
      <ErrorNotice error={moreError} />
      {pages.cursor && (
        <button type="button" onClick={() => void more()}>
          {t('common.more')}
        </button>
      )}
    </>
  );
}

