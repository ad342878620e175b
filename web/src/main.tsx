import { render } from 'preact';
import { App } from './App';
import { lang } from './i18n';
import './styles.css';

document.documentElement.lang = lang() === 'zh' ? 'zh-CN' : 'en';
const root = document.getElementById('app');
if (root) render(<App />, root);

// The app shell is kept by a service worker so the app opens offline (production builds only).
if (import.meta.env.PROD && 'serviceWorker' in navigator) {
  navigator.serviceWorker.register('/sw.js').catch((e) => console.warn('service worker not registered', e));
}
