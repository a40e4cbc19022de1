import { useEffect, useState, type ReactNode } from 'react';
import { currentCredentials, forgetCredentials, onCredentialsChange, type Credentials } from './auth.ts';
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
import { RangeProvider } from './range-context.tsx';
import { Link, matchPath, useLocation } from './router.tsx';

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
];

const NAV: Array<{ to: string; label: MessageKey }> = [
  { to: '/', label: 'nav.overview' },
  { to: '/profiles', label: 'nav.profiles' },
  { to: '/segments', label: 'nav.segments' },
  { to: '/catalogue', label: 'nav.catalogue' },
  { to: '/destinations', label: 'nav.destinations' },
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
                  <Link to={item.to} aria-current={section === item.to ? 'page' : undefined}>
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
              <button type="button" onClick={forgetCredentials}>
                {t('login.signOut')}
              </button>
            </div>
          </header>
          <main>{page}</main>
        </div>
      </div>
    </RangeProvider>
  );
}
