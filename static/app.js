// @ts-check
// Entry point: wires the live feed, the sessions sidebar and the views, and routes on
// location.hash:
//   #/ or #/sessions          sessions home
//   #/sessions/<id>           one session (timeline + chat)
//   #/agents, #/agents/new, #/agents/<id>
//   #/providers, #/providers/new, #/providers/<id>
// Each view gets a Scope (scope.js) that ends with it: its timers and listeners stop
// when the route changes.

import { Agents } from './agents.js';
import { request } from './api.js';
import { Auth } from './auth.js';
import { h } from './dom.js';
import { Live } from './live.js';
import { Providers } from './providers.js';
import { Scope } from './scope.js';
import { Sessions } from './sessions.js';

/**
 * @template {Element} E
 * @param {string} selector
 * @param {new () => E} type
 * @returns {E} the element index.html is known to have
 */
function the(selector, type) {
  const el = document.querySelector(selector);
  if (!(el instanceof type)) throw new Error(`index.html has no ${selector}`);
  return el;
}

const main = the('#view', HTMLElement);
const live = new Live();
const sessions = new Sessions({
  live,
  listEl: the('[data-testid="session-list"]', HTMLElement),
  filterEl: the('[data-testid="session-filter"]', HTMLInputElement),
  newButton: the('[data-testid="new-session"]', HTMLElement),
  dialog: the('#new-session-dialog', HTMLDialogElement),
});
const agents = new Agents({ startSession: (agentId) => sessions.openNewDialog(agentId) });
const providers = new Providers();

/** A path segment of the hash, decoded; as it is when it is not valid percent-encoding
 * (`#/sessions/50%off`: decodeURIComponent would throw and stop the whole page).
 * @param {string} segment */
function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** @typedef {(match: RegExpMatchArray, scope: Scope) => unknown} Show */
/** @type {[RegExp, Show, string][]} pattern, view, nav section */
const routes = [
  [/^\/?(sessions)?\/?$/, () => sessions.showHome(main), 'sessions'],
  [/^\/sessions\/(.+)$/, (m, scope) => sessions.open(main, decoded(m[1]), scope), 'sessions'],
  [/^\/agents\/?$/, (m, scope) => agents.list(main, scope), 'agents'],
  [/^\/agents\/new$/, (m, scope) => agents.form(main, null, scope), 'agents'],
  [/^\/agents\/([^/]+)$/, (m, scope) => agents.form(main, decoded(m[1]), scope), 'agents'],
  [/^\/providers\/?$/, (m, scope) => providers.list(main, scope), 'providers'],
  [/^\/providers\/new$/, (m, scope) => providers.detail(main, null, scope), 'providers'],
  [/^\/providers\/([^/]+)$/, (m, scope) => providers.detail(main, decoded(m[1]), scope), 'providers'],
];

/** What the current view started; disposed of when the route changes. */
let viewScope = new Scope();

function route() {
  const path = location.hash.replace(/^#/, '') || '/';
  for (const [pattern, show, section] of routes) {
    const match = path.match(pattern);
    if (!match) continue;
    viewScope.dispose();
    viewScope = new Scope();
    sessions.close();
    for (const link of document.querySelectorAll('[data-nav]')) {
      if (link instanceof HTMLElement) link.classList.toggle('active', link.dataset.nav === section);
    }
    document.body.dataset.section = section;
    show(match, viewScope);
    return;
  }
  location.hash = '#/';
}

// --- connection status in the top bar

const statusEl = the('[data-testid="connection-status"]', HTMLElement);
const statusLabel = the('[data-testid="connection-status"] .conn-label', HTMLElement);
/** @type {number | undefined} */
let countdown;

/** @param {{state: import('./live.js').LiveState, retryIn: number | null}} detail */
function showConnection({ state, retryIn }) {
  clearInterval(countdown);
  countdown = undefined;
  statusEl.dataset.state = state;
  const render = () => {
    if (state === 'live') statusLabel.textContent = 'Live';
    else if (state === 'connecting') statusLabel.textContent = 'Connecting…';
    else if (state === 'reconnecting') statusLabel.textContent = 'Reconnecting…';
    else if (state === 'stopped') statusLabel.textContent = 'Offline';
    else if (state === 'waiting') {
      const left = Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000));
      statusLabel.textContent = `Offline · retry in ${left}s`;
    } else statusLabel.textContent = state;
  };
  render();
  if (state === 'waiting' && retryIn && retryIn > 1000) countdown = window.setInterval(render, 1000);
}

live.addEventListener('state', (e) => showConnection(/** @type {CustomEvent} */ (e).detail));
statusEl.addEventListener('click', () => live.reconnectNow());

// --- configuration warnings (GET /health), e.g. no authentication on a public address:
// shown above every view so whoever opens the dashboard sees them.

const warningEl = the('[data-testid="config-warning"]', HTMLElement);

async function showServerWarnings() {
  let health;
  try {
    health = await request('GET', '/health');
  } catch {
    return; // the server is unreachable: the connection status says so
  }
  /** @type {string[]} */
  const warnings = health.warnings || [];
  warningEl.replaceChildren(...warnings.map((text) => h('p', { 'data-testid': 'config-warning-text' }, text)));
  warningEl.hidden = warnings.length === 0;
}

// --- signing in (only when the server has auth on) and start

const auth = new Auth();
const userSlot = the('[data-testid="user-slot"]', HTMLElement);
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
  sessions.stop();
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
