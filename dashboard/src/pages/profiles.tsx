import { useState, type FormEvent } from 'react';
import { api } from '../api/endpoints.ts';
import type { QueryValue } from '../api/client.ts';
import { Empty, ErrorNotice, Loading } from '../components/common.tsx';
import { useApi } from '../components/use-api.ts';
import { useI18n } from '../i18n/index.tsx';
import { Link, navigate, useLocation } from '../router.tsx';
import { IDENTIFIER_TYPES } from '../vocabulary.ts';

/** The search form's state lives in the URL, so a search can be shared and survives reload. */
function searchQuery(search: URLSearchParams): Record<string, QueryValue> | null {
  const query: Record<string, QueryValue> = { limit: 50 };
  let any = false;
  for (const [name, value] of search) {
    if (!value) continue;
    if (name === 'identifier' || name === 'type' || name.startsWith('trait.')) {
      query[name] = value;
      if (name !== 'type') any = true;
    }
  }
  return any ? query : null;
}

const NAME_IDENTIFIERS = ['email', 'phone', 'user_id', 'member_id'];

/** What to call a profile: its name trait, else email trait, else its strongest readable identifier, else the id. */
export function displayName(traits: Record<string, unknown>, fallback: string, identifiers: ReadonlyArray<{ type: string; value: string }> = []): string {
  const name = traits.name ?? [traits.firstName, traits.lastName].filter(Boolean).join(' ');
  if (typeof name === 'string' && name) return name;
  if (typeof traits.email === 'string' && traits.email) return traits.email;
  for (const type of NAME_IDENTIFIERS) {
    const identifier = identifiers.find((candidate) => candidate.type === type);
    if (identifier) return identifier.value;
  }
  return fallback;
}

export function ProfilesPage() {
  const { t, format } = useI18n();
  const { search } = useLocation();
  const [identifier, setIdentifier] = useState(search.get('identifier') ?? '');
  const [type, setType] = useState(search.get('type') ?? '');
  const initialTrait = [...search.keys()].find((name) => name.startsWith('trait.'));
  const [traitKey, setTraitKey] = useState(initialTrait?.slice(6) ?? '');
  const [traitValue, setTraitValue] = useState(initialTrait ? (search.get(initialTrait) ?? '') : '');
  const query = searchQuery(search);
  const results = useApi((signal) => (query ? api.searchProfiles(query, signal) : Promise.resolve(undefined)), [JSON.stringify(query)]);

  const submit = (event: FormEvent) => {
    event.preventDefault();
    const params = new URLSearchParams();
    if (identifier.trim()) params.set('identifier', identifier.trim());
    if (type) params.set('type', type);
    if (traitKey.trim() && traitValue !== '') params.set(`trait.${traitKey.trim()}`, traitValue);
    navigate(`/profiles?${params}`);
  };

  return (
    <>
      <h1>{t('profiles.title')}</h1>
      <form className="search-form" role="search" aria-label={t('profiles.search')} onSubmit={submit}>
        <label>
          {t('profiles.identifier')}
          <input name="identifier" value={identifier} onChange={(event) => setIdentifier(event.target.value)} placeholder="ann@example.com" />
        </label>
        <label>
          {t('profiles.identifierType')}
          <select name="type" value={type} onChange={(event) => setType(event.target.value)}>
            <option value="">{t('profiles.anyType')}</option>
            {IDENTIFIER_TYPES.map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t('profiles.traitKey')}
          <input name="traitKey" value={traitKey} onChange={(event) => setTraitKey(event.target.value)} placeholder="city" />
        </label>
        <label>
          {t('profiles.traitValue')}
          <input name="traitValue" value={traitValue} onChange={(event) => setTraitValue(event.target.value)} placeholder="上海" />
        </label>
        <button type="submit" className="primary">
          {t('profiles.searchButton')}
        </button>
      </form>
      {!query && <Empty>{t('profiles.searchHelp')}</Empty>}
      <ErrorNotice error={results.error} onRetry={results.reload} />
      {query && results.loading && <Loading />}
      {results.data && results.data.items.length === 0 && <Empty>{t('profiles.noResults')}</Empty>}
      {results.data && results.data.items.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">{t('common.name')}</th>
              <th scope="col">{t('profiles.identifiers')}</th>
              <th scope="col">{t('profiles.lastSeen')}</th>
            </tr>
          </thead>
          <tbody>
            {results.data.items.map((profile) => (
              <tr key={profile.id}>
                <td>
                  <Link to={`/profiles/${profile.id}`}>{displayName(profile.traits, profile.id.slice(0, 8), profile.identifiers)}</Link>
                </td>
                <td>
                  {profile.identifiers.slice(0, 4).map((id) => (
                    <span key={`${id.type}:${id.value}`} className="chip">
                      {id.type}: {id.value}
                    </span>
                  ))}
                </td>
                <td>{format.dateTime(profile.lastSeen)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
