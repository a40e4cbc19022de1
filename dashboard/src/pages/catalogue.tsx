import { useState } from 'react';
import { api } from '../api/endpoints.ts';
import { Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';

export function CataloguePage() {
  const { t, format } = useI18n();
  const catalogue = useApi((signal) => api.catalogue(signal), []);
  const [selected, setSelected] = useState<{ type: string; name: string } | null>(null);
  const detail = useApi((signal) => (selected ? api.catalogueEvent(selected.type, selected.name, signal) : Promise.resolve(undefined)), [selected?.type, selected?.name]);
  const max = Math.max(1, ...(catalogue.data?.items.map((item) => item.volume) ?? []));
  return (
    <>
      <h1>{t('catalogue.title')}</h1>
      <ErrorNotice error={catalogue.error} onRetry={catalogue.reload} />
      {catalogue.loading && !catalogue.data && <Loading />}
      {catalogue.data && catalogue.data.items.length === 0 && <Empty>{t('catalogue.empty')}</Empty>}
      {catalogue.data && catalogue.data.items.length > 0 && (
        <div className="grid-2">
          <table className="table" data-testid="catalogue">
            <thead>
              <tr>
                <th scope="col">{t('common.name')}</th>
                <th scope="col">{t('common.type')}</th>
                <th scope="col" className="num">
                  {t('catalogue.volume')}
                </th>
                <th scope="col">{t('catalogue.lastSeen')}</th>
              </tr>
            </thead>
            <tbody>
              {catalogue.data.items.map((item) => (
                <tr key={`${item.type}/${item.name}`} aria-selected={selected?.type === item.type && selected.name === item.name}>
                  <td>
                    <button type="button" className="link" onClick={() => setSelected({ type: item.type, name: item.name })}>
                      {item.name || `(${item.type})`}
                    </button>
                  </td>
                  <td>{item.type}</td>
                  <td className="num">
                    <span className="bar-inline" style={{ width: `${(item.volume / max) * 60}px` }} /> {format.number(item.volume)}
                  </td>
                  <td>{format.dateTime(item.lastSeen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {selected && (
            <Card title={`${selected.name || selected.type} · ${t('catalogue.properties')}`}>
              <ErrorNotice error={detail.error} />
              {detail.loading && <Loading />}
              {detail.data && (
                <>
                  <p className="subtle">
                    {t('catalogue.firstSeen')} {format.dateTime(detail.data.firstSeen)} · {t('catalogue.lastSeen')} {format.dateTime(detail.data.lastSeen)}
                  </p>
                  <table className="table compact">
                    <thead>
                      <tr>
                        <th scope="col">{t('catalogue.scope')}</th>
                        <th scope="col">{t('catalogue.path')}</th>
                        <th scope="col">{t('catalogue.types')}</th>
                        <th scope="col" className="num">
                          {t('catalogue.volume')}
                        </th>
                      </tr>
                    </thead>
                    <tbody>
                      {detail.data.properties.map((property) => (
                        <tr key={`${property.scope}.${property.path}`}>
                          <td>{property.scope}</td>
                          <td>
                            <code>{property.path}</code>
                          </td>
                          <td>
                            {Object.entries(property.types)
                              .map(([type, count]) => `${type} ${format.number(count)}`)
                              .join(', ')}
                          </td>
                          <td className="num">{format.number(property.volume)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </>
              )}
            </Card>
          )}
        </div>
      )}
    </>
  );
}
