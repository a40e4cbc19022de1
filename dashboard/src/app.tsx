import { lazy, Suspense, useEffect, useState, type ReactNode } from 'react';
import { apiRequest } from './api/client.ts';
import { currentCredentials, currentRole, forgetCredentials, onCredentialsChange, rememberCredentials, type Credentials } from './auth.ts';
import { RangePicker } from './components/range-picker.tsx';
import { LOCALE_NAMES, LOCALES, useI18n, type Locale, type MessageKey } from './i18n/index.tsx';
import { CataloguePage } from './pages/catalogue.tsx';
import { DestinationsPage } from './pages/destinations.tsx';
import { LoginPage } from './pages/login.tsx';
import { OverviewPage } from './pages/overview.tsx';
import { ProfilePage } from './pages/profile.tsx';
import { ProfilesPage } from './pages/profiles.tsx';
import { SegmentEditorPage } from './pages/segment-editor.tsx';
import { SegmentsPage } from './pages/segments.tsx';
import { SourcesPage } from './pages/data.tsx';
import { ImportsPage } from './pages/data-imports.tsx';
import { QuarantinePage } from './pages/data-quarantine.tsx';
import { IdentitySettingsPage } from './pages/data-identity.tsx';
import { ApiKeysPage, MembersPage, WorkspaceSettingsPage } from './pages/settings.tsx';
import { ChannelsPage, MessagingPolicyPage } from './pages/settings-channels.tsx';
import { TagsPage } from './pages/tags.tsx';
import { RangeProvider } from './range-context.tsx';
import { Link, matchPath, useLocation } from './router.tsx';

// Journeys (React Flow) and analytics (ECharts) load with their pages: the first page stays small.
const JourneysPage = lazy(() => import('./pages/journeys.tsx').then((module) => ({ default: module.JourneysPage })));
const JourneyEditorPage = lazy(() => import('./pages/journey-editor.tsx').then((module) => ({ default: module.JourneyEditorPage })));
const AnalyticsPage = lazy(() => import('./pages/analytics.tsx').then((module) => ({ default: module.AnalyticsPage })));

interface Route {
  pattern: string;
  render(params: Record<string, string>): ReactNode;
}

/** Pages by path; the first match wins. */
const ROUTES: Route[] = [
  { pattern: '/', render: () => <OverviewPage /> },
  { pattern: '/profiles', render: () => <ProfilesPage /> },
  { pattern: '/profiles/:ref', render: (p) => <ProfilePage key={p.ref} profileRef={p.ref!} /> },
  { pattern: '/segments', render: () => <SegmentsPage /> },
  { pattern: '/segments/new', render: () => <SegmentEditorPage /> },
  { pattern: '/segments/:key', render: (p) => <SegmentEditorPage key={p.key} segmentKey={p.key} /> },
  { pattern: '/catalogue', render: () => <CataloguePage /> },
  { pattern: '/destinations', render: () => <DestinationsPage /> },
  { pattern: '/journeys', render: () => <JourneysPage /> },
  { pattern: '/journeys/:key', render: (p) => <JourneyEditorPage key={p.key} journeyKey={p.key!} /> },
  { pattern: '/analytics', render: () => <AnalyticsPage tab="funnel" /> },
  { pattern: '/analytics/:tab', render: (p) => <AnalyticsPage tab={p.tab!} /> },
  { pattern: '/tags', render: () => <TagsPage /> },
  { pattern: '/data', render: () => <SourcesPage /> },
  { pattern: '/data/sources', render: () => <SourcesPage /> },
  { pattern: '/data/imports', render: () => <ImportsPage /> },
  { pattern: '/data/quarantine', render: () => <QuarantinePage /> },
  { pattern: '/data/identity', render: () => <IdentitySettingsPage /> },
  { pattern: '/settings', render: () => <WorkspaceSettingsPage /> },
  { pattern: '/settings/workspace', render: () => <WorkspaceSettingsPage /> },
  { pattern: '/settings/members', render: () => <MembersPage /> },
  { pattern: '/settings/keys', render: () => <ApiKeysPage /> },
  { pattern: '/settings/channels', render: () => <ChannelsPage /> },
  { pattern: '/settings/messaging', render: () => <MessagingPolicyPage /> },
];

const NAV: Array<{ to: string; label: MessageKey }> = [
  { to: '/', label: 'nav.overview' },
  { to: '/profiles', label: 'nav.profiles' },
  { to: '/segments', label: 'nav.segments' },
  { to: '/catalogue', label: 'nav.catalogue' },
  { to: '/destinations', label: 'nav.destinations' },
  { to: '/journeys', label: 'nav.journeys' },
  { to: '/analytics', label: 'nav.analytics' },
  { to: '/data/sources', label: 'nav.data' },
  { to: '/settings/workspace', label: 'nav.settings' },
];

function LanguageSwitch() {
  const { locale, setLocale, t } = useI18n();
  return (
    <label className="language">
      {t('lang.label')}
      <select value={locale} onChange={(event) => setLocale(event.target.value as Locale)} data-testid="language">
        {LOCALES.map((value) => (
          <option key={value} value={value}>
            {LOCALE_NAMES[value]}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A user's workspaces (when more than one) and who is signed in. */
function SessionControls({ credentials }: { credentials: Credentials }) {
  const { t } = useI18n();
  const signOut = async () => {
    // The session ends on the server too; a failure (already expired) still signs out here.
    if (credentials.kind === 'session') await apiRequest('POST', '/v1/auth/logout').catch(() => undefined);
    forgetCredentials();
  };
  return (
    <>
      {credentials.kind === 'session' && credentials.workspaces.length > 1 && (
        <label>
          {t('login.workspace')}
          <select
            data-testid="workspace"
            value={credentials.workspace ?? ''}
            onChange={(event) => rememberCredentials({ ...credentials, workspace: event.target.value })}
          >
            {credentials.workspaces.map((workspace) => (
              <option key={workspace.id} value={workspace.id}>
                {workspace.name}
              </option>
            ))}
          </select>
        </label>
      )}
      {credentials.kind === 'session' && (
        <span className="who" data-testid="who">
          {t('login.signedInAs', { name: credentials.name || credentials.email, role: currentRole(credentials) ?? 'superuser' })}
        </span>
      )}
      <button type="button" onClick={() => void signOut()}>
        {t('login.signOut')}
      </button>
    </>
  );
}

export function App() {
  const { t } = useI18n();
  const [credentials, setCredentials] = useState<Credentials | null>(currentCredentials);
  useEffect(() => onCredentialsChange(setCredentials), []);
  const { path } = useLocation();

  if (!credentials) {
    return (
      <div className="login-shell">
        <header className="login-top">
          <LanguageSwitch />
        </header>
        <LoginPage />
      </div>
    );
  }

  let page: ReactNode = (
    <h1>{t('notFound.title')}</h1>
  );
  for (const route of ROUTES) {
    const params = matchPath(route.pattern, path);
    if (params) {
      page = route.render(params);
      break;
    }
  }
  const section = '/' + (path.split('/')[1] ?? '');
  return (
    <RangeProvider>
      <div className="shell">
        <aside className="sidebar">
          <div className="brand">
            <span className="brand-mark" aria-hidden="true" />
            <div>
              <strong>{t('app.name')}</strong>
              <small>{t('app.tagline')}</small>
            </div>
          </div>
          <nav aria-label={t('nav.main')}>
            <ul>
              {NAV.map((item) => (
                <li key={item.to}>
                  <Link to={item.to} aria-current={section === '/' + (item.to.split('/')[1] ?? '') ? 'page' : undefined}>
                    {t(item.label)}
                  </Link>
                </li>
              ))}
            </ul>
          </nav>
        </aside>
        <div className="main">
          <header className="topbar">
            <RangePicker />
            <div className="topbar-right">
              <LanguageSwitch />
              <SessionControls credentials={credentials} />
            </div>
          </header>
          {currentRole(credentials) === 'viewer' && (
            <p className="notice read-only" role="status">
              {t('login.readOnly')}
            </p>
          )}
          {/* A workspace switch remounts the page, so every request is made again for the new workspace. */}
          <main key={credentials.kind === 'session' ? (credentials.workspace ?? '') : 'key'}>
            <Suspense fallback={<p className="loading" role="status">{t('common.loading')}</p>}>{page}</Suspense>
          </main>
        </div>
      </div>
    </RangeProvider>
  );
}
