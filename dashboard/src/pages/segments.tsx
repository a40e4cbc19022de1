import { api } from '../api/endpoints.ts';
import type { Segment } from '../api/types.ts';
import { Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n, type MessageKey } from '../i18n/index.tsx';
import { Link } from '../router.tsx';

export const KIND_LABEL: Record<Segment['kind'], MessageKey> = {
  realtime: 'segments.kindRealtime',
  periodic: 'segments.kindPeriodic',
  static: 'segments.kindStatic',
};

export function SegmentsPage() {
  const { t, format } = useI18n();
  const segments = useApi((signal) => api.segments({ limit: 200 }, signal), []);
  return (
    <>
      <div className="page-head">
        <h1>{t('segments.title')}</h1>
        <Link to="/segments/new" className="button primary">
          {t('segments.new')}
        </Link>
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
                  {segment.isTag && <span className="chip tag">tag</span>}
                </td>
                <td>{t(KIND_LABEL[segment.kind])}</td>
                <td>
                  {segment.status} · {segment.state}
                </td>
                <td className="num">{format.number(segment.memberCount)}</td>
                <td>{format.dateTime(segment.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
