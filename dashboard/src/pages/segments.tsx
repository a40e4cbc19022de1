import { api } from '../api/endpoints.ts';
import type { Segment, SegmentTrends } from '../api/types.ts';
import { Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { useRange } from '../range-context.tsx';
import { Link } from '../router.tsx';
import { sizeSeries, sparklinePoints } from '../segment-trend.ts';
import { daysOf } from '../time-range.ts';

type Trend = SegmentTrends['items'][number];

/** The size over the shared time range as a sparkline, with the change in words for screen readers. */
export function SegmentTrend({ trend, days }: { trend: Trend; days: string[] }) {
  const { t, format } = useI18n();
  const series = sizeSeries(trend.members, trend.changedSince, days, trend.days);
  const first = series[0] ?? trend.members;
  const last = series[series.length - 1] ?? trend.members;
  const change = last - first;
  const label = t('segments.trendLabel', { from: format.number(first), to: format.number(last) });
  return (
    <span className="trend">
      <svg className="sparkline" viewBox="0 0 100 24" width="100" height="24" role="img" aria-label={label}>
        <polyline points={sparklinePoints(series, 100, 22)} fill="none" />
      </svg>
      <span className={change > 0 ? 'trend-up' : change < 0 ? 'trend-down' : 'subtle'} data-testid="segment-trend">
        {change > 0 ? '+' : ''}
        {format.number(change)}
      </span>
    </span>
  );
}

export const KIND_LABEL: Record<Segment['kind'], MessageKey> = {
  realtime: 'segments.kindRealtime',
  periodic: 'segments.kindPeriodic',
  static: 'segments.kindStatic',
};

export function SegmentsPage() {
  const { t, format } = useI18n();
  const segments = useApi((signal) => api.segments({ limit: 200 }, signal), []);
  const { resolved } = useRange();
  const trends = useApi((signal) => api.segmentTrends(resolved, undefined, signal), [resolved.from, resolved.to]);
  const trendDays = trends.data ? daysOf(resolved, trends.data.timeZone) : [];
  const trendOf = (key: string) => trends.data?.items.find((item) => item.key === key);
  return (
    <>
      <div className="page-head">
        <h1>{t('segments.title')}</h1>
        <div className="form-actions">
          <Link to="/tags" className="button">
            {t('tags.library')}
          </Link>
          <Link to="/segments/new" className="button primary">
            {t('segments.new')}
          </Link>
        </div>
      </div>
      <ErrorNotice error={segments.error} onRetry={segments.reload} />
      {segments.loading && !segments.data && <Loading />}
      {segments.data && segments.data.items.length === 0 && <Empty>{t('segments.empty')}</Empty>}
      {segments.data && segments.data.items.length > 0 && (
        <table className="table" data-testid="segment-list">
          <thead>
            <tr>
              <th scope="col">{t('common.name')}</th>
              <th scope="col">{t('segments.kind')}</th>
              <th scope="col">{t('common.status')}</th>
              <th scope="col" className="num">
                {t('common.members')}
              </th>
              <th scope="col">{t('segments.trend')}</th>
              <th scope="col">{t('segments.updated')}</th>
            </tr>
          </thead>
          <tbody>
            {segments.data.items.map((segment) => (
              <tr key={segment.id}>
                <td>
                  <Link to={`/segments/${encodeURIComponent(segment.key)}`}>{segment.name}</Link>
                  <br />
                  <code className="subtle">{segment.key}</code>
                  {segment.isTag && <span className="chip tag">{t('segments.tagChip')}</span>}
                </td>
                <td>{t(KIND_LABEL[segment.kind])}</td>
                <td>
                  {segment.status} · {segment.state}
                </td>
                <td className="num">{format.number(segment.memberCount)}</td>
                <td>{trendOf(segment.key) ? <SegmentTrend trend={trendOf(segment.key)!} days={trendDays} /> : '—'}</td>
                <td>{format.dateTime(segment.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
