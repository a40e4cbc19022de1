import { api } from '../api/endpoints.ts';
import { BarChart, Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { useRange } from '../range-context.tsx';
import { Link } from '../router.tsx';
import { daysOf } from '../time-range.ts';

export function OverviewPage() {
  const { t, format } = useI18n();
  const { resolved } = useRange();
  const overview = useApi((signal) => api.overview(resolved, signal), [resolved.from, resolved.to]);
  const data = overview.data;

  return (
    <>
      <h1>{t('overview.title')}</h1>
      <ErrorNotice error={overview.error} onRetry={overview.reload} />
      {overview.loading && !data && <Loading />}
      {data && (
        <>
          <div className="metrics">
            <Metric label={t('overview.events')} value={format.number(data.events)} />
            <Metric label={t('overview.activeProfiles')} value={format.number(data.activeProfiles)} />
            <Metric label={t('overview.newProfiles')} value={format.number(data.newProfiles)} />
            <Metric label={t('overview.profiles')} value={format.number(data.profiles)} />
            <Metric
              label={t('overview.identifiedShare')}
              value={format.percent(data.profiles ? data.identifiedProfiles / data.profiles : 0)}
              note={t('overview.identifiedOf', { identified: format.number(data.identifiedProfiles), profiles: format.number(data.profiles) })}
            />
          </div>
          <div className="metrics" data-testid="message-metrics">
            <Metric label={t('overview.activeJourneys')} value={format.number(data.activeJourneys)} />
            <Metric label={t('overview.messagesSent')} value={format.number(data.messages.sent)} />
            <Metric
              label={t('overview.messagesDelivered')}
              value={format.number(data.messages.delivered)}
              note={data.messages.sent ? t('overview.ofSent', { share: format.percent(data.messages.delivered / data.messages.sent) }) : undefined}
            />
            <Metric
              label={t('overview.messagesClicked')}
              value={format.number(data.messages.clicked)}
              note={data.messages.delivered ? t('overview.ofDelivered', { share: format.percent(data.messages.clicked / data.messages.delivered) }) : undefined}
            />
          </div>
          <div className="grid-2">
            <Card title={t('overview.eventsPerDay')}>
              {data.events === 0 ? (
                <Empty>{t('overview.noEvents')}</Empty>
              ) : (
                <BarChart
                  label={t('overview.eventsPerDay')}
                  format={format.number}
                  data={(() => {
                    const byDay = new Map(data.eventsPerDay.map((d) => [d.day, d.events]));
                    return daysOf(resolved, data.timeZone).map((day) => ({ label: format.day(day), value: byDay.get(day) ?? 0 }));
                  })()}
                />
              )}
            </Card>
            <Card title={t('overview.topSegments')}>
              {data.topSegments.length === 0 ? (
                <Empty>{t('overview.noSegments')}</Empty>
              ) : (
                <ol className="top-list">
                  {data.topSegments.map((segment) => (
                    <li key={segment.key}>
                      <Link to={`/segments/${encodeURIComponent(segment.key)}`}>{segment.name}</Link>
                      <span className="bar-inline" style={{ width: `${(segment.members / Math.max(1, data.topSegments[0]!.members)) * 100}%` }} />
                      <span className="num">{format.number(segment.members)}</span>
                    </li>
                  ))}
                </ol>
              )}
            </Card>
          </div>
        </>
      )}
    </>
  );
}

function Metric({ label, value, note }: { label: string; value: string; note?: string }) {
  return (
    <div className="metric">
      <span className="metric-label">{label}</span>
      <span className="metric-value">{value}</span>
      {note && <span className="metric-note">{note}</span>}
    </div>
  );
}
