import { useEffect, useState } from 'react';
import { ApiRequestError } from '../api/client.ts';
import { api } from '../api/endpoints.ts';
import type { Template, TemplatePreview } from '../api/types.ts';
import { useI18n } from '../i18n/index.tsx';
import { ErrorNotice, Loading } from './common.tsx';

type Channel = Template['channel'];

/** The fields a new template of a channel starts with (what the channel needs, see docs/channels.md). */
export const STARTER_FIELDS: Record<Channel, Record<string, string>> = {
  email: { subject: 'Hello {{ traits.name | default: "there" }}', text: 'Hi {{ traits.name | default: "there" }}, thanks for visiting.' },
  sms: { text: 'Hi {{ traits.name | default: "there" }}' },
  wechat: { template_id: 'TEMPLATE_ID', 'data.first': 'Hi {{ traits.name | default: "there" }}' },
  wecom: { text: 'Hi {{ traits.name | default: "there" }}' },
  push: { title: 'Hello', body: 'Hi {{ traits.name | default: "there" }}' },
  webhook: { body: '{"profile": "{{ profile.id }}"}' },
};

/**
 * A send node's template: edit its fields (Liquid) for a locale, save them as a new version (or
 * create the template), and preview it rendered for a chosen profile.
 */
export function TemplateEditor({ templateKey, channel, editable, onClose, onSaved }: { templateKey: string; channel: Channel; editable: boolean; onClose(): void; onSaved?(): void }) {
  const { t } = useI18n();
  const [template, setTemplate] = useState<Template | null | undefined>(undefined);
  const [loadError, setLoadError] = useState<unknown>();
  const [locale, setLocale] = useState('en');
  const [fields, setFields] = useState<Record<string, string>>({});
  const [name, setName] = useState(templateKey);
  const [newField, setNewField] = useState('');
  const [saveError, setSaveError] = useState<unknown>();
  const [saved, setSaved] = useState<number | null>(null);
  const [profileRef, setProfileRef] = useState('');
  const [preview, setPreview] = useState<TemplatePreview | null>(null);
  const [previewError, setPreviewError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const controller = new AbortController();
    api.template(templateKey, controller.signal).then(
      (found) => {
        setTemplate(found);
        setLocale(found.defaultLocale);
        setFields(found.content[found.defaultLocale] ?? {});
      },
      (error: unknown) => {
        if (controller.signal.aborted) return;
        if (error instanceof ApiRequestError && error.status === 404) {
          setTemplate(null);
          setFields(STARTER_FIELDS[channel]);
        } else setLoadError(error);
      },
    );
    return () => controller.abort();
  }, [templateKey, channel]);

  const save = async () => {
    setBusy(true);
    setSaveError(undefined);
    setSaved(null);
    try {
      const next = template
        ? await api.addTemplateVersion(templateKey, { defaultLocale: template.defaultLocale, content: { ...template.content, [locale]: fields } })
        : await api.createTemplate({ key: templateKey, channel, name: name || templateKey, defaultLocale: locale, content: { [locale]: fields } });
      setTemplate(next);
      setSaved(next.version);
      onSaved?.();
    } catch (error) {
      setSaveError(error);
    } finally {
      setBusy(false);
    }
  };

  const runPreview = async () => {
    setPreviewError(undefined);
    setPreview(null);
    try {
      // A profile by id or by `<type>:<value>`: the profile API resolves either to its id.
      const profile = await api.profile(profileRef.trim());
      setPreview(await api.previewTemplate(templateKey, { profileId: profile.id, locale }));
    } catch (error) {
      setPreviewError(error);
    }
  };

  if (loadError) return <ErrorNotice error={loadError} />;
  if (template === undefined) return <Loading />;
  const locales = template ? Object.keys(template.content) : [locale];
  return (
    <section className="template-editor" aria-label={t('templates.title', { key: templateKey })} data-testid="template-editor">
      <div className="card-header">
        <h2>{t('templates.title', { key: templateKey })}</h2>
        <button type="button" onClick={onClose}>
          {t('templates.close')}
        </button>
      </div>
      {template ? (
        <p className="help">{t('templates.versionInfo', { version: template.version, channel: template.channel })}</p>
      ) : (
        <p className="help">{t('templates.missing', { channel })}</p>
      )}
      {!template && (
        <label>
          {t('common.name')}
          <input value={name} onChange={(event) => setName(event.target.value)} />
        </label>
      )}
      <label>
        {t('templates.locale')}
        {template ? (
          <select
            value={locale}
            onChange={(event) => {
              setLocale(event.target.value);
              setFields(template.content[event.target.value] ?? {});
            }}
          >
            {locales.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
        ) : (
          <input value={locale} onChange={(event) => setLocale(event.target.value)} />
        )}
      </label>
      {Object.entries(fields).map(([field, source]) => {
        const problem = saveError instanceof ApiRequestError && saveError.field?.includes(field) ? saveError : null;
        return (
          <div key={field} className="node-field">
            <label>
              {field}
              <textarea rows={field === 'html' || field === 'body' || field === 'text' ? 4 : 2} value={source} disabled={!editable} aria-invalid={problem ? true : undefined} onChange={(event) => setFields({ ...fields, [field]: event.target.value })} />
            </label>
            {problem && (
              <p className="error-inline" role="alert">
                {problem.message}
              </p>
            )}
          </div>
        );
      })}
      {editable && (
        <div className="form-actions">
          <label>
            {t('templates.newField')}
            <input value={newField} onChange={(event) => setNewField(event.target.value)} placeholder="html" />
          </label>
          <button
            type="button"
            disabled={!newField || newField in fields}
            onClick={() => {
              setFields({ ...fields, [newField]: '' });
              setNewField('');
            }}
          >
            {t('templates.addField')}
          </button>
          <button type="button" className="primary" disabled={busy} onClick={() => void save()}>
            {template ? t('templates.saveVersion') : t('templates.create')}
          </button>
          {saved !== null && (
            <span className="notice-inline" role="status">
              {t('templates.saved', { version: saved })}
            </span>
          )}
        </div>
      )}
      <ErrorNotice error={saveError} />
      <h3>{t('templates.preview')}</h3>
      <div className="form-actions">
        <label>
          {t('templates.previewProfile')}
          <input value={profileRef} placeholder="email:lin@example.cn" onChange={(event) => setProfileRef(event.target.value)} />
        </label>
        <button type="button" disabled={!profileRef.trim() || !template} onClick={() => void runPreview()}>
          {t('templates.render')}
        </button>
      </div>
      {!template && <p className="help">{t('templates.previewAfterSave')}</p>}
      <ErrorNotice error={previewError} />
      {preview && (
        <dl className="key-values preview" data-testid="template-preview">
          {Object.entries(preview.fields).map(([field, value]) => (
            <div key={field}>
              <dt>{field}</dt>
              <dd>{field === 'html' ? <iframe title={t('templates.htmlPreview')} sandbox="" srcDoc={value} /> : <pre>{value}</pre>}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}
