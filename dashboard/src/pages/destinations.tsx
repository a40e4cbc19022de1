import { api } from '../api/endpoints.ts';
import { Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { Link } from '../router.tsx';

export function DestinationsPage() {
  const { t, format } = useI18n();
  const destinations = useApi((signal) => api.destinations(signal), []);
  return (
    <>
      <h1>{t('destinations.title')}</h1>
      <ErrorNotice error={destinations.error} onRetry={destinations.reload} />
      {destinations.loading && !destinations.data && <Loading />}
      {destinations.data && destinations.data.items.length === 0 && <Empty>{t('destinations.empty')}</Empty>}
      {destinations.data?.items.map((destination) => (
        <Card key={destination.id} title={destination.name} actions={<span className={`status ${destination.status}`}>{destination.status}</span>}>
          <p>
            {t('destinations.url')}: <code>{destination.url}</code> · {t('destinations.secretHint', { hint: destination.secretHint })}
          </p>
          {destination.segments.length === 0 ? (
            <Empty>{t('profile.noSegments')}</Empty>
          ) : (
            <table className="table compact">
              <thead>
                <tr>
                  <th scope="col">{t('destinations.segments')}</th>
                  <th scope="col">{t('common.status')}</th>
                  <th scope="col" className="num">
                    {t('destinations.batchesChanges')}
                  </th>
                  <th scope="col" className="num">
                    {t('destinations.deadLetters')}
                  </th>
                  <th scope="col">{t('common.time')}</th>
                </tr>
              </thead>
              <tbody>
                {destination.segments.map((connection) => (
                  <tr key={connection.segment.id}>
                    <td>
                      <Link to={`/segments/${encodeURIComponent(connection.segment.key)}`}>{connection.segment.name}</Link>
                      {connection.lastError && <div className="error-inline">{connection.lastError}</div>}
                    </td>
                    <td>{connection.status}{connection.backfillPending && ' · backfill'}</td>
                    <td className="num">
                      {format.number(connection.deliveredBatches)} / {format.number(connection.deliveredChanges)}
                    </td>
                    <td className="num">{format.number(connection.deadBatches)}</td>
                    <td>{format.dateTime(connection.lastDeliveredAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Card>
      ))}
    </>
  );
}
