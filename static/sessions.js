// Sessions: the live list (sidebar), one session's view (header, timeline, chat box),
// and the "New session" dialog. The list comes from /ws: `init` holds the newest page,
// "Load more" asks the feed for the next one (`list_sessions`, answered in order with the
// session_* messages); the open session's timeline is filled over REST and then kept
// current from /ws events.

import { api } from './api.js';
import { Approvals } from './approvals.js';
import { badge, confirmButton, fmtDateTime, h, mount, relTime, toast } from './dom.js';
import { normalizeEvent, Timeline } from './timeline.js';

const PAGE = 500;
const LIST_PAGE = 100; // sessions per "Load more"

/** Newest first, as the server pages: created_at, then id (byte order, like the server). */
function newerFirst(a, b) {
  const ta = String(a.created_at);
  const tb = String(b.created_at);
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.session_id < b.session_id ? 1 : a.session_id > b.session_id ? -1 : 0;
}

/** The status people care about: the loop's own status for agent sessions. */
export function sessionStatus(s) {
  return s.kind === 'agent' ? (s.runtime_status || s.status) : s.status;
}

/** A turn is under way: running, or paused on tool calls (waiting_for_approval / _client). */
const turnUnderWay = (status) => status === 'running' || String(status).startsWith('waiting_for_');

export class Sessions {
  constructor({ live, listEl, filterEl, newButton, dialog }) {
    this.live = live;
    this.listEl = listEl;
    this.filterEl = filterEl;
    this.dialog = dialog;
    this.sessions = new Map();
    this.initialized = false; // a /ws init has been seen
    this.next = null; // cursor of the next page of the list; null: every session is loaded
    this.oldest = null; // the last session of the pages loaded so far
    this.loadingMore = false;
    this.openId = null;
    this.view = null; // elements of the open session's view
    this.timeline = null;
    live.addEventListener('message', (e) => this.onLive(e.detail));
    filterEl.addEventListener('input', () => this.renderList());
    newButton.addEventListener('click', () => this.openNewDialog());
    dialog.querySelector('form').addEventListener('submit', (e) => this.submitNew(e));
    dialog.querySelector('[data-action="close"]').addEventListener('click', () => dialog.close());
    setInterval(() => this.renderList(), 30000); // keep "2m ago" honest
  }

  /** Until /ws says hello, show the list from REST so the page is useful at once. */
  async loadFallback() {
    try {
      const list = await api.listSessions();
      if (this.initialized) return;
      this.sessions = new Map(list.map((s) => [s.session_id, s]));
      this.renderList();
    } catch (err) {
      if (!this.initialized) this.listEl.replaceChildren(h('li', { class: 'muted' }, `Cannot load sessions: ${err.message}`));
    }
  }

  // --- the live feed

  onLive(msg) {
    switch (msg.type) {
      case 'init':
        this.initialized = true;
        this.sessions = new Map();
        this.addPage(msg);
        if (this.openId) {
          const s = this.sessions.get(this.openId);
          if (s) {
            this.renderHeader(s);
            this.catchUp(); // whatever happened while we were away, once
          } else {
            this.markGone();
          }
        }
        break;
      case 'sessions':
        if (msg.before !== this.next) break; // an answer to an older request
        this.addPage(msg);
        break;
      case 'error':
        if (msg.request !== 'list_sessions') break;
        this.loadingMore = false;
        this.renderList();
        toast(`Cannot load more sessions: ${msg.detail}`, 'error');
        break;
      case 'session_created':
      case 'session_updated':
        // One older than the pages loaded comes with its page; listing it now would put
        // it after a gap of sessions not loaded yet.
        if (this.sessions.has(msg.session.session_id) || !this.beyondLoaded(msg.session)) {
          this.sessions.set(msg.session.session_id, msg.session);
          this.renderList();
        }
        if (msg.session.session_id === this.openId) this.renderHeader(msg.session);
        break;
      case 'session_deleted':
        this.sessions.delete(msg.session_id);
        this.renderList();
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

  // --- the list

  /** A page from `init` or `sessions`: newer than anything after it in the feed. */
  addPage(msg) {
    const page = msg.sessions || [];
    for (const s of page) this.sessions.set(s.session_id, s);
    this.next = msg.next || null;
    if (page.length) this.oldest = page[page.length - 1];
    this.loadingMore = false;
    this.renderList();
  }

  beyondLoaded(s) {
    return Boolean(this.next && this.oldest) && newerFirst(s, this.oldest) > 0;
  }

  loadMore() {
    if (!this.next || this.loadingMore) return;
    if (this.live.state !== 'live') {
      toast('Not connected; the list reloads when the live feed is back.', 'error');
      return;
    }
    this.loadingMore = true;
    this.live.send({ type: 'list_sessions', before: this.next, limit: LIST_PAGE });
    this.renderList();
  }

  moreButton() {
    if (!this.next) return null;
    return h('li', { class: 'list-more' },
      h('button', {
        type: 'button', class: 'btn btn-small', 'data-testid': 'load-more', disabled: this.loadingMore,
        onclick: () => this.loadMore(),
      }, this.loadingMore ? 'Loading…' : 'Load more'));
  }

  renderList() {
    const query = this.filterEl.value.trim().toLowerCase();
    const items = [...this.sessions.values()]
      .filter((s) => !query || [s.session_name, s.session_id, s.agent_name, s.kind]
        .some((v) => v && String(v).toLowerCase().includes(query)))
      .sort(newerFirst);
    if (!items.length) {
      mount(this.listEl, h('li', { class: 'muted list-empty' },
        this.sessions.size ? 'No session matches the filter.' : 'No sessions yet. Start one with “New session”.'),
      this.moreButton());
      return;
    }
    mount(this.listEl, items.map((s) => {
      const status = sessionStatus(s);
      return h('li', {},
        h('a', {
          href: `#/sessions/${encodeURIComponent(s.session_id)}`, class: `session-item${s.session_id === this.openId ? ' active' : ''}`,
          'data-testid': 'session-item', 'data-session-id': s.session_id, 'data-status': status,
        },
        h('div', { class: 'session-item-top' },
          h('span', { class: 'session-item-name', 'data-testid': 'session-name' }, s.session_name || s.session_id),
          badge(status, 'session-status')),
        h('div', { class: 'session-item-meta' },
          h('span', { class: `kind kind-${s.kind}` }, s.kind === 'agent' ? 'agent' : 'external'),
          s.agent_name ? h('span', {}, s.agent_name) : null,
          h('span', { class: 'muted', title: fmtDateTime(s.updated_at || s.created_at) }, relTime(s.updated_at || s.created_at)))));
    }), this.moreButton());
  }

  // --- one session

  showHome(main) {
    this.close();
    const count = this.sessions.size;
    mount(main, h('section', { class: 'home', 'data-testid': 'home' },
      h('h1', {}, 'Sessions'),
      h('p', { class: 'muted' }, count
        ? 'Pick a session on the left to follow its timeline, or start a new one.'
        : 'No sessions yet. Create an agent, then start a session with it.'),
      h('div', { class: 'home-actions' },
        h('button', { type: 'button', class: 'btn btn-primary', onclick: () => this.openNewDialog() }, 'New session'),
        h('a', { class: 'btn', href: '#/agents/new' }, 'New agent'),
        h('a', { class: 'btn', href: '#/providers' }, 'LLM providers'))));
    this.renderList();
  }

  close() {
    this.openId = null;
    this.view = null;
    this.timeline = null;
  }

  async open(main, id) {
    this.close();
    this.openId = id;
    this.timeline = new Timeline();
    const approvals = new Approvals(id);
    this.timeline.onEvent = (e) => approvals.apply(e);
    const v = this.view = {
      title: h('h1', { class: 'session-title', 'data-testid': 'session-title' }, id),
      badges: h('div', { class: 'session-badges' }),
      meta: h('div', { class: 'session-meta' }),
      actions: h('div', { class: 'session-actions' }),
      notice: h('div', { class: 'session-notice' }),
      chat: h('div', { class: 'chat-slot' }),
      approvals,
      kind: null,
    };
    v.actions.append(confirmButton('Delete', 'Delete for good', () => this.remove(id), 'delete-session'));
    mount(main, h('section', { class: 'session-view', 'data-testid': 'session-view', 'data-session-id': id },
      h('header', { class: 'session-head' },
        h('div', { class: 'session-head-main' }, h('div', { class: 'title-row' }, v.title, v.badges), v.meta),
        v.actions),
      v.notice, this.timeline.el, approvals.el, v.chat));
    this.renderList();
    approvals.load();
    let session = this.sessions.get(id);
    if (!session) {
      try {
        session = await api.getSession(id);
      } catch (err) {
        if (this.openId !== id) return;
        if (err.status === 404) this.markGone('This session does not exist (it may have been deleted).');
        else toast(`Cannot load the session: ${err.message}`, 'error');
        return;
      }
      if (this.openId !== id) return;
    }
    this.renderHeader(session);
    this.catchUp();
  }

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
    if (s.kind === 'agent' && v.kind !== 'agent') this.renderChat();
    if (s.kind !== 'agent' && v.kind === 'agent') v.chat.replaceChildren();
    v.kind = s.kind;
    if (v.cancel) v.cancel.disabled = !turnUnderWay(status);
  }

  renderChat() {
    const v = this.view;
    const id = this.openId;
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
      this.caughtUp = (this.caughtUp || 0) + 1; // for tests: how many catch-ups finished
    } catch (err) {
      if (this.timeline !== timeline) return;
      if (err.status === 404) this.markGone();
      else toast(`Cannot load events: ${err.message}`, 'error');
    } finally {
      timeline.catching = false;
    }
  }

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

  async remove(id) {
    try {
      await api.deleteSession(id);
    } catch (err) {
      if (err.status !== 404) {
        toast(`Delete failed: ${err.message}`, 'error');
        return;
      }
    }
    this.sessions.delete(id);
    this.renderList();
    toast('Session deleted', 'info');
    if (this.openId === id) location.hash = '#/sessions';
  }

  // --- "New session" dialog

  async openNewDialog(agentId = null) {
    const form = this.dialog.querySelector('form');
    const select = form.elements.agent_id;
    const error = form.querySelector('.form-error');
    error.textContent = '';
    form.elements.title.value = '';
    mount(select, h('option', { value: '' }, 'Loading agents…'));
    if (!this.dialog.open) this.dialog.showModal();
    try {
      const agents = await api.listAgents('active');
      if (!agents.length) {
        mount(select, h('option', { value: '' }, 'No agents yet'));
        mount(error, 'Create an agent first: ', h('a', { href: '#/agents/new', 'data-action': 'close' }, 'New agent'));
        error.querySelector('a').addEventListener('click', () => this.dialog.close());
        return;
      }
      mount(select, agents.map((a) => h('option', { value: a.id, selected: a.id === agentId }, a.name)));
    } catch (err) {
      error.textContent = `Cannot load agents: ${err.message}`;
    }
  }

  async submitNew(e) {
    e.preventDefault();
    const form = e.target;
    const error = form.querySelector('.form-error');
    const agentId = form.elements.agent_id.value;
    if (!agentId) {
      error.textContent = 'Pick an agent.';
      return;
    }
    const button = form.querySelector('[type="submit"]');
    button.disabled = true;
    try {
      const session = await api.createSession(agentId, form.elements.title.value.trim());
      this.dialog.close();
      location.hash = `#/sessions/${encodeURIComponent(session.id)}`;
    } catch (err) {
      error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }
}
