import { useState } from 'react';
import { api } from '../api/endpoints.ts';
import type { Tag } from '../api/types.ts';
import { Card, Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { RoleHint } from '../components/forms.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { may } from '../permissions.ts';
import { Link } from '../router.tsx';

/** The behaviour tag library: every ready tag with a switch; a tag that is on shows its members. */
export function TagsPage() {
  const { t, locale, format } = useI18n();
  const library = useApi((signal) => api.tagLibrary(locale, signal), [locale]);
  const tags = useApi((signal) => api.tags(signal), []);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<{ template: string; error: unknown } | null>(null);
  const canWrite = may('tags.write');
  const onByTemplate = new Map<string, Tag>();
  for (const tag of (tags.data?.items ?? []) as Tag[]) if (tag.template && tag.status !== 'archived') onByTemplate.set(tag.template, tag);

  const toggle = async (template: string) => {
    setBusy(template);
    setError(null);
    try {
      const on = onByTemplate.get(template);
      if (on) await api.disableTag(on.key);
      else await api.enableTag(template, locale);
      tags.reload();
    } catch (caught) {
      setError({ template, error: caught });
    } finally {
      setBusy(null);
    }
  };

  return (
    <>
      <p>
        <Link to="/segments">← {t('segments.title')}</Link>
      </p>
      <h1>{t('tags.library')}</h1>
      <p className="help">{t('tags.help')}</p>
      <RoleHint allowed={canWrite} />
      <ErrorNotice error={library.error} onRetry={library.reload} />
      <ErrorNotice error={tags.error} onRetry={tags.reload} />
      {library.loading && !library.data && <Loading />}
      {library.data && library.data.items.length === 0 && <Empty>{t('tags.empty')}</Empty>}
      <div className="grid-3" data-testid="tag-library">
        {library.data?.items.map((item) => {
          const on = onByTemplate.get(item.template);
          return (
            <Card
              key={item.template}
              title={item.name}
              actions={
                <label className="switch inline">
                  <input type="checkbox" role="switch" aria-label={t('tags.switch', { name: item.name })} checked={!!on} disabled={!canWrite || busy === item.template} onChange={() => void toggle(item.template)} />
                  {on ? t('tags.on') : t('tags.off')}
                </label>
              }
            >
              <p>{item.description}</p>
              <code className="subtle">{item.exampleText}</code>
              {on && (
                <p>
                  <Link to={`/segments/${encodeURIComponent(on.key)}`}>{t('tags.members', { n: format.number(on.memberCount) })}</Link> · {on.state}
                </p>
              )}
              {error?.template === item.template && <ErrorNotice error={error.error} />}
            </Card>
          );
        })}
      </div>
    </>
  );
}
