// Entry point: wires the live feed, the sessions sidebar and the views, and routes on
// location.hash:
//   #/ or #/sessions          sessions home
//   #/sessions/<id>           one session (timeline + chat)
//   #/agents, #/agents/new, #/agents/<id>
//   #/providers, #/providers/new, #/providers/<id>

import { Agents } from './agents.js';
import { request } from './api.js';
import { Auth } from './auth.js';
import { h } from './dom.js';
import { Live } from './live.js';
import { Providers } from './providers.js';
import { Sessions } from './sessions.js';

const main = document.getElementById('view');
const live = new Live();
const sessions = new Sessions({
  live,
  listEl: document.querySelector('[data-testid="session-list"]'),
  filterEl: document.querySelector('[data-testid="session-filter"]'),
  newButton: document.querySelector('[data-testid="new-session"]'),
  dialog: document.getElementById('new-session-dialog'),
});
const agents = new Agents({ startSession: (agentId) => sessions.openNewDialog(agentId) });
const providers = new Providers();

const routes = [
  [/^\/?(sessions)?\/?$/, () => sessions.showHome(main), 'sessions'],
  [/^\/sessions\/(.+)$/, (m) => sessions.open(main, decodeURIComponent(m[1])), 'sessions'],
  [/^\/agents\/?$/, () => { sessions.close(); return agents.list(main); }, 'agents'],
  [/^\/agents\/new$/, () => { sessions.close(); return agents.form(main, null); }, 'agents'],
  [/^\/agents\/([^/]+)$/, (m) => { sessions.close(); return agents.form(main, decodeURIComponent(m[1])); }, 'agents'],
  [/^\/providers\/?$/, () => { sessions.close(); return providers.list(main); }, 'providers'],
  [/^\/providers\/new$/, () => { sessions.close(); return providers.detail(main, null); }, 'providers'],
  [/^\/providers\/([^/]+)$/, (m) => { sessions.close(); return providers.detail(main, decodeURIComponent(m[1])); }, 'providers'],
];

function route() {
  const path = location.hash.replace(/^#/, '') || '/';
  for (const [pattern, show, section] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    for (const link of document.querySelectorAll('[data-nav]')) {
      link.classList.toggle('active', link.dataset.nav === section);
    }
    document.body.dataset.section = section;
    show(match);
    return;
  }
  location.hash = '#/';
}

// --- connection status in the top bar

const statusEl = document.querySelector('[data-testid="connection-status"]');
let countdown = null;

function showConnection({ state, retryIn }) {
  clearInterval(countdown);
  statusEl.dataset.state = state;
  const label = statusEl.querySelector('.conn-label');
  const render = () => {
    if (state === 'live') label.textContent = 'Live';
    else if (state === 'connecting') label.textContent = 'Connecting…';
    else if (state === 'reconnecting') label.textContent = 'Reconnecting…';
    else if (state === 'stopped') label.textContent = 'Offline';
    else if (state === 'waiting') {
      const left = Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000));
      label.textContent = `Offline · retry in ${left}s`;
    } else label.textContent = state;
  };
  render();
  if (state === 'waiting' && retryIn > 1000) countdown = setInterval(render, 1000);
}

live.addEventListener('state', (e) => showConnection(e.detail));
statusEl.addEventListener('click', () => live.reconnectNow());

// --- configuration warnings (GET /health), e.g. no authentication on a public address:
// shown above every view so whoever opens the dashboard sees them.

const warningEl = document.querySelector('[data-testid="config-warning"]');

async function showServerWarnings() {
  let health;
  try {
    health = await request('GET', '/health');
  } catch {
    return; // the server is unreachable: the connection status says so
  }
  const warnings = health.warnings || [];
  warningEl.replaceChildren(...warnings.map((text) => h('p', { 'data-testid': 'config-warning-text' }, text)));
  warningEl.hidden = warnings.length === 0;
}

// --- signing in (only when the server has auth on) and start

const auth = new Auth();
const userSlot = document.querySelector('[data-testid="user-slot"]');
// A /ws handshake refused after the login expired: renew it (or ask to sign in) first.
live.beforeRetry = () => (auth.enabled ? request('GET', '/v1/auth/me') : null);

function begin() {
  auth.renderUser(userSlot);
  route();
  sessions.loadFallback();
  live.start();
}

auth.addEventListener('signed-out', async () => {
  live.stop();
  auth.renderUser(userSlot);
  await auth.showLogin();
  begin();
});

async function start() {
  showServerWarnings(); // public, so it needs no sign-in; not awaited: nothing waits for it
  let signedIn = true;
  try {
    signedIn = await auth.init();
  } catch {
    // the server is unreachable or broken: start anyway, the views and the feed will say so
  }
  if (!signedIn) await auth.showLogin();
  window.addEventListener('hashchange', route);
  begin();
}

start();

// A small hook for debugging in the console and for the browser tests.
window.__dashboard = {
  live,
  sessions,
  auth,
  get ws() { return live.ws; },
  get state() { return live.state; },
};
