// @ts-check
// Tool calls that wait (docs/api.md §3.9): the open session's calls waiting for a
// person's approval (Approve / Deny, with an optional reason) or for the client's
// result (shown only). Seeded with GET /v1/sessions/{id}/tool-calls?status=waiting when
// the session opens, then kept current by the timeline's events, applied in sequence
// order: tool.approval_requested / tool.client_requested add a call, tool.call_answered
// and the end of the turn remove it.

import { api } from './api.js';
import { fmtTime, h, prettyJson, toast } from './dom.js';

/** @typedef {import('./api.js').ToolCall} ToolCall */

/** @type {Record<string, 'approval' | 'client'>} */
const REQUESTS = { 'tool.approval_requested': 'approval', 'tool.client_requested': 'client' };
const TURN_ENDS = new Set(['session.completed', 'session.failed', 'session.cancelled']);

export class Approvals {
  /** @param {string} sessionId */
  constructor(sessionId) {
    this.sessionId = sessionId;
    /** @type {Map<string, ToolCall>} tool_call_id -> the call (kind: approval or client) */
    this.calls = new Map();
    /** @type {Set<string>} ids the log (or an answer from here) says no longer wait */
    this.closed = new Set();
    this.el = h('section', { class: 'pending-calls', 'data-testid': 'pending-calls', 'aria-label': 'Tool calls waiting', hidden: true });
    this.title = h('div', { class: 'pending-title' });
    this.el.append(this.title);
    /** @type {Map<string, HTMLElement>} tool_call_id -> its card, kept while the call waits */
    this.cards = new Map();
  }

  /** The calls that wait now; what the log already closed stays closed. */
  async load() {
    let rows;
    try {
      rows = await api.toolCalls(this.sessionId, 'waiting');
    } catch (err) {
      if (err.status !== 404) toast(`Cannot load the waiting tool calls: ${err.message}`, 'error');
      return;
    }
    for (const row of rows) {
      if (!this.closed.has(row.tool_call_id)) this.calls.set(row.tool_call_id, row);
    }
    this.render();
  }

  /**
   * One event of the session's log (normalized), in sequence order.
   * @param {import('./timeline.js').TimelineEvent} e
   */
  apply(e) {
    const d = e.data || {};
    if (REQUESTS[e.type]) {
      this.closed.delete(d.tool_call_id); // (a model may reuse an id in a later turn)
      this.calls.set(d.tool_call_id, /** @type {ToolCall} */ ({ ...d, kind: REQUESTS[e.type] }));
    } else if (e.type === 'tool.call_answered') {
      this.close(d.tool_call_id);
    } else if (TURN_ENDS.has(e.type)) {
      for (const id of [...this.calls.keys()]) this.close(id);
    } else {
      return;
    }
    this.render();
  }

  /** @param {string} id */
  close(id) {
    this.closed.add(id);
    this.calls.delete(id);
  }

  /** Keyed: a card stays the same element while its call waits (a reason being typed,
   * a button being clicked, are not lost to an unrelated event's redraw). */
  render() {
    this.el.hidden = this.calls.size === 0;
    for (const [id, card] of this.cards) {
      if (!this.calls.has(id)) {
        card.remove();
        this.cards.delete(id);
      }
    }
    const approvals = [...this.calls.values()].filter((c) => c.kind === 'approval').length;
    this.title.textContent = approvals ? `Waiting for your approval (${approvals})` : 'Waiting for the client';
    for (const call of this.calls.values()) {
      if (!this.cards.has(call.tool_call_id)) {
        const card = this.card(call);
        this.cards.set(call.tool_call_id, card);
        this.el.append(card);
      }
    }
  }

  /** @param {ToolCall} call */
  card(call) {
    const approval = call.kind === 'approval';
    return h('div', {
      class: `pending-call pending-${call.kind}`, 'data-testid': 'pending-call',
      'data-tool-call-id': call.tool_call_id, 'data-kind': call.kind,
    },
    h('div', { class: 'pending-head' },
      h('span', { class: 'tool-name', 'data-testid': 'pending-call-name' }, call.tool_name || 'tool'),
      h('span', { class: 'pending-kind', 'data-testid': 'pending-call-kind' },
        approval ? 'needs approval' : 'waiting for the client'),
      call.expires_at ? h('span', { class: 'muted' }, `expires ${fmtTime(call.expires_at)}`) : null),
    h('pre', { class: 'json', 'data-testid': 'pending-call-arguments' }, prettyJson(call.arguments ?? {})),
    approval ? this.answerButtons(call) : null);
  }

  /** @param {ToolCall} call */
  answerButtons(call) {
    const reason = h('input', {
      class: 'pending-reason', 'data-testid': 'deny-reason', placeholder: 'Reason (optional, for Deny)',
      maxlength: 2000, 'aria-label': 'Reason for denying',
    });
    const approve = h('button', { type: 'button', class: 'btn btn-primary btn-small', 'data-testid': 'approve-call' }, 'Approve');
    const deny = h('button', { type: 'button', class: 'btn btn-danger btn-small', 'data-testid': 'deny-call' }, 'Deny');
    /** @param {'approve' | 'deny'} decision */
    const answer = async (decision) => {
      approve.disabled = deny.disabled = reason.disabled = true;
      try {
        if (decision === 'approve') await api.approveToolCall(this.sessionId, call.tool_call_id);
        else await api.denyToolCall(this.sessionId, call.tool_call_id, reason.value.trim());
        toast(`${call.tool_name}: ${decision === 'approve' ? 'approved' : 'denied'}`, 'success');
        this.close(call.tool_call_id);
        this.render();
      } catch (err) {
        toast(`${decision === 'approve' ? 'Approve' : 'Deny'} failed: ${err.message}`, 'error');
        if (err.status === 409 || err.status === 404) { // answered elsewhere, or gone: not waiting any more
          this.close(call.tool_call_id);
          this.render();
        } else {
          approve.disabled = deny.disabled = reason.disabled = false;
        }
      }
    };
    approve.addEventListener('click', () => answer('approve'));
    deny.addEventListener('click', () => answer('deny'));
    reason.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        answer('deny');
      }
    });
    return h('div', { class: 'pending-actions' }, approve, reason, deny);
  }
}
