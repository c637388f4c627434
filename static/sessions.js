// @ts-check
// Sessions: routes the live feed to the sidebar (sessionlist.js) and to the open
// session's view (header, timeline, waiting tool calls, chat box), and shows the sessions
// home. The open session's timeline is filled over REST and then kept current from /ws
// events; after a reconnect it catches up over REST once.

import { api } from './api.js';
import { Approvals } from './approvals.js';
import { badge, confirmButton, fmtDateTime, h, mount, toast } from './dom.js';
import { NewSessionDialog } from './newsession.js';
import { SessionList, sessionStatus } from './sessionlist.js';
import { normalizeEvent, Timeline } from './timeline.js';

/** @typedef {import('./api.js').ArSession} ArSession */
/** @typedef {import('./scope.js').Scope} Scope */
/**
 * The open session's elements.
 * @typedef {{title: HTMLElement, badges: HTMLElement, meta: HTMLElement, actions: HTMLElement,
 *   notice: HTMLElement, chat: HTMLElement, approvals: Approvals, kind: string | null, gone: boolean,
 *   cancel: HTMLButtonElement | null}} SessionView
 */

const PAGE = 500; // events per REST request while catching up (paged by sequence)

/** A turn is under way: running, or paused on tool calls (waiting_for_approval / _client). @param {string} status */
const turnUnderWay = (status) => status === 'running' || String(status).startsWith('waiting_for_');

export class Sessions {
  /**
   * @param {{live: import('./live.js').Live, listEl: HTMLElement, filterEl: HTMLInputElement,
   *   newButton: HTMLElement, dialog: HTMLDialogElement}} options
   */
  constructor({ live, listEl, filterEl, newButton, dialog }) {
    this.live = live;
    this.list = new SessionList({ live, listEl, filterEl, onChange: () => this.renderHomeText() });
    this.dialog = new NewSessionDialog(dialog);
    this.initialized = false; // a /ws init has been seen
    /** @type {string | null} */
    this.openId = null;
    /** @type {SessionView | null} elements of the open session's view */
    this.view = null;
    /** @type {Timeline | null} */
    this.timeline = null;
    /** @type {HTMLElement | null} the home's "select a session" line, while the home shows */
    this.homeText = null;
    live.addEventListener('message', (e) => this.onLive(/** @type {CustomEvent} */ (e).detail));
    newButton.addEventListener('click', () => this.openNewDialog());
  }

  /** @param {string | null} [agentId] */
  openNewDialog(agentId = null) {
    return this.dialog.open(agentId);
  }

  /** Until /ws says hello, show the list from REST so the page is useful at once. */
  async loadFallback() {
    this.list.start();
    try {
      const page = await api.listSessions();
      if (!this.initialized) this.list.replaceAll(page, null);
    } catch (err) {
      if (!this.initialized) toast(`Cannot load sessions: ${err.message}`, 'error');
    }
  }

  /** Signed out: forget the list until the next sign-in. */
  stop() {
    this.initialized = false;
    this.list.stop();
  }

  // --- the live feed

  /** @param {import('./live.js').LiveMessage} msg */
  onLive(msg) {
    switch (msg.type) {
      case 'init':
        this.initialized = true;
        this.list.replaceAll(msg.sessions || [], msg.next);
        if (this.openId) {
          const s = this.list.get(this.openId);
          if (s) {
            this.renderHeader(s);
            this.catchUp(); // whatever happened while we were away, once
          } else {
            this.markGone();
          }
        }
        break;
      case 'sessions':
        if (msg.before === this.list.next) this.list.addPage(msg.sessions || [], msg.next); // else: an old answer
        break;
      case 'error':
        if (msg.request === 'list_sessions') this.list.pageFailed(msg.detail);
        break;
      case 'session_created':
      case 'session_updated':
        this.list.upsert(msg.session);
        if (msg.session.session_id === this.openId) this.renderHeader(msg.session);
        break;
      case 'session_deleted':
        this.list.remove(msg.session_id);
        if (msg.session_id === this.openId) this.markGone();
        break;
      case 'event': {
        const event = normalizeEvent(msg.data || {});
        if (event.session_id !== this.openId || !this.timeline) break;
        this.timeline.push(event);
        if (this.timeline.gap) this.catchUp();
        break;
      }
      default:
        break;
    }
  }

  // --- the home

  /** @param {HTMLElement} main */
  showHome(main) {
    this.homeText = h('p', { class: 'muted', 'data-testid': 'home-text' });
    mount(main, h('section', { class: 'home', 'data-testid': 'home' },
      h('h1', {}, 'Sessions'),
      this.homeText,
      h('div', { class: 'home-actions' },
        h('button', { type: 'button', class: 'btn btn-primary', onclick: () => this.openNewDialog() }, 'New session'),
        h('a', { class: 'btn', href: '#/agents/new' }, 'New agent'),
        h('a', { class: 'btn', href: '#/providers' }, 'LLM providers'))));
    this.renderHomeText();
  }

  /** Follows the list: it may arrive (or empty) after the home is shown. */
  renderHomeText() {
    const el = this.homeText;
    if (!el || !el.isConnected) return;
    const { loaded, size } = this.list;
    el.dataset.state = !loaded ? 'loading' : size ? 'select' : 'empty';
    el.textContent = !loaded ? 'Loading sessions…'
      : size ? 'Select a session on the left to follow its timeline, or start a new one.'
        : 'No sessions yet. Create an agent, then start a session with it.';
  }

  // --- one session

  /** The view is going away (the router calls this on every route change). */
  close() {
    this.openId = null;
    this.view = null;
    this.timeline = null;
    this.homeText = null;
    this.list.setActive(null);
  }

  /**
   * @param {HTMLElement} main
   * @param {string} id
   * @param {Scope} scope
   */
  async open(main, id, scope) {
    this.openId = id;
    const timeline = this.timeline = new Timeline();
    const approvals = new Approvals(id);
    timeline.onEvent = (e) => approvals.apply(e);
    /** @type {SessionView} */
    const v = {
      title: h('h1', { class: 'session-title', 'data-testid': 'session-title' }, id),
      badges: h('div', { class: 'session-badges' }),
      meta: h('div', { class: 'session-meta' }),
      actions: h('div', { class: 'session-actions' }),
      notice: h('div', { class: 'session-notice' }),
      chat: h('div', { class: 'chat-slot' }),
      approvals,
      kind: null,
      gone: false,
      cancel: null,
    };
    this.view = v;
    v.actions.append(confirmButton('Delete', 'Delete for good', () => this.remove(id), 'delete-session'));
    mount(main, h('section', { class: 'session-view', 'data-testid': 'session-view', 'data-session-id': id },
      h('header', { class: 'session-head' },
        h('div', { class: 'session-head-main' }, h('div', { class: 'title-row' }, v.title, v.badges), v.meta),
        v.actions),
      v.notice, timeline.el, approvals.el, v.chat));
    this.list.setActive(id);
    approvals.load();
    let session = this.list.get(id);
    if (!session) {
      try {
        session = await api.getSession(id);
      } catch (err) {
        if (scope.disposed) return;
        if (err.status === 404) this.markGone('This session does not exist (it may have been deleted).');
        else toast(`Cannot load the session: ${err.message}`, 'error');
        return;
      }
      if (scope.disposed) return;
    }
    this.renderHeader(session);
    this.catchUp();
  }

  /** @param {ArSession} s */
  renderHeader(s) {
    const v = this.view;
    if (!v || v.gone) return;
    const status = sessionStatus(s);
    v.title.textContent = s.session_name || s.session_id;
    mount(v.badges, badge(status), h('span', { class: `kind kind-${s.kind}`, 'data-testid': 'session-kind' }, s.kind));
    mount(v.meta,
      h('span', {}, 'id ', h('code', {}, s.session_id)),
      s.kind === 'agent' && s.agent_id
        ? h('span', {}, 'agent ', h('a', { href: `#/agents/${encodeURIComponent(s.agent_id)}` }, s.agent_name || s.agent_id))
        : (s.agent_name ? h('span', {}, 'agent ', s.agent_name) : null),
      s.project_dir ? h('span', {}, 'dir ', h('code', {}, s.project_dir)) : null,
      h('span', {}, 'created ', fmtDateTime(s.created_at)));
    if (s.kind === 'agent' && status === 'failed' && s.last_error) {
      mount(v.notice, h('div', { class: 'error-banner', 'data-testid': 'session-error', role: 'alert' },
        h('strong', {}, 'Last error'), h('span', { class: 'error-text' }, s.last_error)));
    } else if (!v.gone) {
      v.notice.replaceChildren();
    }
    if (s.kind === 'agent' && v.kind !== 'agent') this.renderChat(v, s.session_id);
    if (s.kind !== 'agent' && v.kind === 'agent') v.chat.replaceChildren();
    v.kind = s.kind;
    if (v.cancel) v.cancel.disabled = !turnUnderWay(status);
  }

  /**
   * @param {SessionView} v
   * @param {string} id
   */
  renderChat(v, id) {
    const input = h('textarea', {
      class: 'chat-input', 'data-testid': 'chat-input', rows: 2, placeholder: 'Message the agent…  (Enter to send, Shift+Enter for a new line)',
      'aria-label': 'Message',
    });
    const send = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'chat-send' }, 'Send');
    const cancel = h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'cancel-button', disabled: true,
      title: 'Stop the running turn' }, 'Cancel');
    const form = h('form', { class: 'chat', 'data-testid': 'chat-form' }, input, h('div', { class: 'chat-buttons' }, send, cancel));
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text) return;
      send.disabled = true;
      try {
        await api.sendMessage(id, text);
        input.value = '';
      } catch (err) {
        toast(`Not sent: ${err.message}`, 'error');
      } finally {
        send.disabled = false;
        input.focus();
      }
    });
    cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try {
        const result = await api.cancel(id);
        toast(result.cancelled ? 'Turn cancelled' : 'Nothing was running', 'info');
      } catch (err) {
        toast(`Cancel failed: ${err.message}`, 'error');
      }
    });
    v.cancel = cancel;
    mount(v.chat, form);
  }

  /** Fetch everything after the last sequence we have; safe to call any time (one fetch
   *  loop per timeline at a time; a call during a fetch makes the loop go round again). */
  async catchUp() {
    const id = this.openId;
    const timeline = this.timeline;
    if (!id || !timeline) return;
    if (timeline.catching) {
      timeline.catchAgain = true;
      return;
    }
    timeline.catching = true;
    try {
      do {
        timeline.catchAgain = false;
        let page;
        do {
          page = await api.events(id, timeline.lastSeq, PAGE);
          if (this.timeline !== timeline) return;
          timeline.push(...page.data.map(normalizeEvent));
          if (timeline.gap && page.data.length < PAGE) timeline.flushPending(); // the log had no more
        } while (page.data.length === PAGE);
        if (timeline.lastSeq === 0) timeline.setEmptyText('No events yet.');
      } while (timeline.catchAgain);
    } catch (err) {
      if (this.timeline !== timeline) return;
      if (err.status === 404) this.markGone();
      else toast(`Cannot load events: ${err.message}`, 'error');
    } finally {
      timeline.catching = false;
    }
  }

  /** @param {string} [text] */
  markGone(text = 'This session was deleted.') {
    const v = this.view;
    if (!v || v.gone) return;
    v.gone = true;
    mount(v.notice, h('div', { class: 'notice', 'data-testid': 'session-gone' }, text, ' ',
      h('a', { href: '#/sessions' }, 'Back to sessions')));
    v.chat.replaceChildren();
    v.approvals.el.remove();
    v.actions.replaceChildren();
  }

  /** @param {string} id */
  async remove(id) {
    try {
      await api.deleteSession(id);
    } catch (err) {
      if (err.status !== 404) {
        toast(`Delete failed: ${err.message}`, 'error');
        return;
      }
    }
    this.list.remove(id);
    toast('Session deleted', 'info');
    if (this.openId === id) location.hash = '#/sessions';
  }
}
