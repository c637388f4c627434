// @ts-check
// The sessions sidebar: one row per session, newest first, kept by session id. A change
// to one session (session_created / _updated / _deleted on /ws) updates, inserts or
// removes that session's row only; the rest of the list is left as it is (a row keeps its
// element, so focus and hover survive). The list comes in pages: /ws `init` holds the
// newest one, "Load more" asks the feed for the next (`list_sessions`).

import { badge, fmtDateTime, h, mount, relTime, toast } from './dom.js';

/** @typedef {import('./api.js').ArSession} ArSession */

export const LIST_PAGE = 100; // sessions per "Load more"
const TICK_MS = 30000; // how often "2m ago" is brought up to date

/**
 * Newest first, as the server pages: created_at, then id (byte order, like the server).
 * @param {ArSession} a
 * @param {ArSession} b
 */
export function newerFirst(a, b) {
  const ta = String(a.created_at);
  const tb = String(b.created_at);
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.session_id < b.session_id ? 1 : a.session_id > b.session_id ? -1 : 0;
}

/**
 * The status people care about: the loop's own status for agent sessions.
 * @param {ArSession} s
 */
export function sessionStatus(s) {
  return (s.kind === 'agent' ? (s.runtime_status || s.status) : s.status) || 'unknown';
}

/**
 * @param {ArSession} s
 * @param {string} query lower case, trimmed
 */
function matches(s, query) {
  return !query || [s.session_name, s.session_id, s.agent_name, s.kind]
    .some((v) => v && String(v).toLowerCase().includes(query));
}

export class SessionList {
  /**
   * @param {{live: import('./live.js').Live, listEl: HTMLElement, filterEl: HTMLInputElement,
   *   onChange?: () => void}} options onChange: told when sessions come or go
   */
  constructor({ live, listEl, filterEl, onChange }) {
    this.live = live;
    this.listEl = listEl;
    this.filterEl = filterEl;
    this.onChange = onChange || (() => {});
    /** @type {Map<string, ArSession>} */
    this.sessions = new Map();
    /** @type {Map<string, HTMLLIElement>} session id -> its row */
    this.rows = new Map();
    /** @type {string[]} the ids in list order (newest first), for finding a new row's place */
    this.order = [];
    this.loaded = false; // a list has arrived (REST or /ws)
    /** @type {string | null} cursor of the next page; null: every session is loaded */
    this.next = null;
    /** @type {ArSession | null} the last session of the pages loaded so far */
    this.oldest = null;
    this.loadingMore = false;
    /** @type {string | null} */
    this.activeId = null;
    /** @type {number | undefined} */
    this.ticker = undefined;
    this.emptyEl = h('li', { class: 'muted list-empty', 'data-testid': 'session-list-empty' }, 'Loading…');
    this.moreButton = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'load-more' }, 'Load more');
    this.moreEl = h('li', { class: 'list-more', hidden: true }, this.moreButton);
    this.moreButton.addEventListener('click', () => this.loadMore());
    mount(listEl, this.emptyEl, this.moreEl);
    filterEl.addEventListener('input', () => this.applyFilter());
  }

  /** Keep the times current while the dashboard runs (stop() ends it). */
  start() {
    if (this.ticker === undefined) this.ticker = window.setInterval(() => this.tick(), TICK_MS);
  }

  /** Signed out: stop the ticker and forget the sessions (the next user may see others). */
  stop() {
    clearInterval(this.ticker);
    this.ticker = undefined;
    this.replaceAll([], null);
    this.loaded = false;
    this.renderFooter();
  }

  // --- pages

  /**
   * A whole new first page (REST at start, /ws `init` on every connect): rows of sessions
   * not in it go, the others are updated in place.
   * @param {ArSession[]} page
   * @param {string | null} next
   */
  replaceAll(page, next) {
    const keep = new Set(page.map((s) => s.session_id));
    for (const id of [...this.rows.keys()]) if (!keep.has(id)) this.removeRow(id);
    this.oldest = null;
    this.addPage(page, next);
  }

  /**
   * A page older than everything listed so far (or the first).
   * @param {ArSession[]} page
   * @param {string | null} next
   */
  addPage(page, next) {
    for (const s of page) this.put(s);
    this.next = next || null;
    if (page.length) this.oldest = page[page.length - 1];
    this.loaded = true;
    this.loadingMore = false;
    this.renderFooter();
    this.onChange();
  }

  /** The feed could not answer `list_sessions`. @param {string} detail */
  pageFailed(detail) {
    this.loadingMore = false;
    this.renderFooter();
    toast(`Cannot load more sessions: ${detail}`, 'error');
  }

  loadMore() {
    if (!this.next || this.loadingMore) return;
    if (this.live.state !== 'live') {
      toast('Not connected; the list reloads when the live feed is back.', 'error');
      return;
    }
    this.loadingMore = true;
    this.live.send({ type: 'list_sessions', before: this.next, limit: LIST_PAGE });
    this.renderFooter();
  }

  // --- one session

  /**
   * A session was created or changed. One older than the pages loaded comes with its
   * page: listing it now would put it after a gap of sessions not loaded yet.
   * @param {ArSession} s
   */
  upsert(s) {
    const known = this.sessions.has(s.session_id);
    if (!known && this.next && this.oldest && newerFirst(s, this.oldest) > 0) return;
    this.put(s);
    this.renderFooter();
    if (!known) this.onChange();
  }

  /** @param {string} id */
  remove(id) {
    if (!this.sessions.has(id)) return;
    this.removeRow(id);
    this.renderFooter();
    this.onChange();
  }

  /** @param {string} id */
  get(id) {
    return this.sessions.get(id);
  }

  get size() {
    return this.sessions.size;
  }

  /** Mark the open session's row. @param {string | null} id */
  setActive(id) {
    if (id === this.activeId) return;
    const before = this.activeId ? this.rows.get(this.activeId) : null;
    if (before) this.markActive(before, false);
    this.activeId = id;
    const row = id ? this.rows.get(id) : null;
    if (row) this.markActive(row, true);
  }

  // --- rows

  /** @param {ArSession} s */
  put(s) {
    this.sessions.set(s.session_id, s);
    let row = this.rows.get(s.session_id);
    if (!row) {
      row = h('li', {}, h('a', { class: 'session-item', 'data-testid': 'session-item' }));
      this.rows.set(s.session_id, row);
      this.insertRow(row, s);
    }
    this.fill(row, s);
  }

  /**
   * Put a new row in its place: a binary search of the ids in list order.
   * @param {HTMLLIElement} row
   * @param {ArSession} s
   */
  insertRow(row, s) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const other = this.sessions.get(this.order[mid]);
      if (other && newerFirst(other, s) < 0) lo = mid + 1;
      else hi = mid;
    }
    const before = lo < this.order.length ? this.rows.get(this.order[lo]) : null;
    this.order.splice(lo, 0, s.session_id);
    this.listEl.insertBefore(row, before || this.emptyEl);
  }

  /** @param {string} id */
  removeRow(id) {
    this.rows.get(id)?.remove();
    this.rows.delete(id);
    this.sessions.delete(id);
    const at = this.order.indexOf(id);
    if (at >= 0) this.order.splice(at, 1);
  }

  /**
   * Bring a row up to date with its session (the row's elements stay).
   * @param {HTMLLIElement} row
   * @param {ArSession} s
   */
  fill(row, s) {
    const a = /** @type {HTMLAnchorElement} */ (row.firstElementChild);
    const status = sessionStatus(s);
    const when = s.updated_at || s.created_at;
    a.href = `#/sessions/${encodeURIComponent(s.session_id)}`;
    a.dataset.sessionId = s.session_id;
    a.dataset.status = status;
    this.markActive(row, s.session_id === this.activeId);
    mount(a,
      h('div', { class: 'session-item-top' },
        h('span', { class: 'session-item-name', 'data-testid': 'session-name' }, s.session_name || s.session_id),
        badge(status, 'session-status')),
      h('div', { class: 'session-item-meta' },
        h('span', { class: `kind kind-${s.kind}` }, s.kind === 'agent' ? 'agent' : 'external'),
        s.agent_name ? h('span', {}, s.agent_name) : null,
        h('span', { class: 'muted', title: fmtDateTime(when), 'data-time': when }, relTime(when))));
    row.hidden = !matches(s, this.query());
  }

  /**
   * @param {HTMLLIElement} row
   * @param {boolean} active
   */
  markActive(row, active) {
    const a = /** @type {HTMLElement} */ (row.firstElementChild);
    a.classList.toggle('active', active);
    if (active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }

  query() {
    return this.filterEl.value.trim().toLowerCase();
  }

  applyFilter() {
    const query = this.query();
    for (const [id, row] of this.rows) {
      const s = this.sessions.get(id);
      row.hidden = !s || !matches(s, query);
    }
    this.renderFooter();
  }

  tick() {
    for (const el of this.listEl.querySelectorAll('[data-time]')) {
      el.textContent = relTime(el.getAttribute('data-time'));
    }
  }

  /** The line under the rows: loading, nothing yet, nothing matches; and "Load more". */
  renderFooter() {
    let visible = 0;
    for (const row of this.rows.values()) if (!row.hidden) visible += 1;
    let text = '';
    if (!this.loaded) text = 'Loading…';
    else if (!this.sessions.size) text = 'No sessions yet. Start one with “New session”.';
    else if (!visible) {
      // The filter searches the sessions loaded so far: older ones may match.
      text = this.next ? 'No loaded session matches the filter; “Load more” searches older ones.'
        : 'No session matches the filter.';
    }
    this.emptyEl.textContent = text;
    this.emptyEl.hidden = !text;
    this.moreEl.hidden = !this.next;
    this.moreButton.disabled = this.loadingMore;
    this.moreButton.textContent = this.loadingMore ? 'Loading…' : 'Load more';
  }
}
