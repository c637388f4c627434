// @ts-check
// A session's timeline: turns its event log into chat bubbles, tool cards, markers and
// error banners. Events are applied strictly in `sequence` order, each at most once:
// duplicates (the same event over REST and over /ws) are dropped, and an event that
// arrives ahead of a gap waits in `pending` until the gap is filled by a REST catch-up.

import { fmtTime, h } from './dom.js';
import { finishTool, toolCard } from './toolcards.js';

/**
 * An event as the timeline applies it.
 * @typedef {{id: string, session_id: string, sequence: number, type: string, data: Record<string, any>,
 *   created_at?: string}} TimelineEvent
 * @typedef {import('./toolcards.js').ToolEntry} ToolEntry
 */

/**
 * One shape for both sources: REST /v1 events and /ws (Agent Runtime) events.
 * @param {import('./api.js').RawEvent} e
 * @returns {TimelineEvent}
 */
export function normalizeEvent(e) {
  return {
    id: e.id,
    session_id: e.session_id,
    sequence: e.sequence,
    type: e.type || e.event_type || '',
    data: e.data || {},
    // One time whichever way the event came (REST page or /ws): the reporter's own
    // timestamp for a posted Agent Runtime event, else when the server stored it.
    created_at: (typeof e.data?.timestamp === 'string' && e.data.timestamp) || e.created_at || e.timestamp,
  };
}

/** @param {unknown} content */
function messageText(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.filter((b) => b && (b.type || 'text') === 'text').map((b) => b.text || '').join('');
  }
  const block = /** @type {{text?: unknown}} */ (content);
  if (typeof block === 'object' && typeof block.text === 'string') return block.text;
  return '';
}

export class Timeline {
  constructor() {
    this.el = h('div', { class: 'timeline', 'data-testid': 'timeline', 'aria-live': 'polite' });
    /** @type {((event: TimelineEvent) => void) | null} also told every event it applies, in order */
    this.onEvent = null;
    /** @type {HTMLElement | null} */
    this.placeholder = null;
    this.lastSeq = 0;
    /** @type {Map<number, TimelineEvent>} sequence -> event, waiting for a gap to be filled */
    this.pending = new Map();
    /** @type {Map<string, HTMLElement>} message_id -> streaming assistant bubble */
    this.bubbles = new Map();
    /** @type {Map<string, ToolEntry>} tool_call_id -> card */
    this.tools = new Map();
    /** @type {ToolEntry[]} external pre_tool cards without an id, waiting for their post_tool */
    this.openHookTools = [];
    this.usage = { input: 0, output: 0, steps: 0 };
    /** @type {{body: HTMLElement, sequence: number} | null} the last assistant message shown */
    this.lastAnswer = null;
    // One REST catch-up loop at a time (Sessions.catchUp); a call during it asks for another round.
    this.catching = false;
    this.catchAgain = false;
    this.reset();
  }

  reset(placeholder = 'Loading events…') {
    this.placeholder = h('p', { class: 'timeline-empty', 'data-testid': 'timeline-empty' }, placeholder);
    this.el.replaceChildren(this.placeholder);
    this.lastSeq = 0;
    this.pending = new Map(); // sequence -> event, waiting for a gap to be filled
    this.bubbles = new Map(); // message_id -> streaming assistant bubble
    this.tools = new Map(); // tool_call_id -> card
    this.openHookTools = []; // external pre_tool cards without an id, waiting for their post_tool
    this.usage = { input: 0, output: 0, steps: 0 };
    this.lastAnswer = null;
  }

  /** @param {string} text */
  setEmptyText(text) {
    if (this.placeholder) this.placeholder.textContent = text;
  }

  get gap() {
    return this.pending.size > 0;
  }

  /**
   * Add events (any source, any order); those already shown or waiting are dropped.
   * @param {...TimelineEvent} events
   */
  push(...events) {
    for (const event of events) {
      const seq = event.sequence;
      if (Number.isInteger(seq) && seq > this.lastSeq) this.pending.set(seq, event);
    }
    this.drain();
  }

  drain() {
    const stick = this.nearBottom();
    let applied = false;
    for (;;) {
      const event = this.pending.get(this.lastSeq + 1);
      if (!event) break;
      this.pending.delete(event.sequence);
      this.lastSeq = event.sequence;
      try {
        this.apply(event);
        if (this.onEvent) this.onEvent(event);
      } catch (err) {
        console.error('cannot show event', event, err); // one odd event must not stop the timeline
      }
      applied = true;
    }
    if (applied && stick) this.scrollToEnd();
  }

  /** Give up on a gap the log could not fill: apply what is waiting, in order. */
  flushPending() {
    const seqs = [...this.pending.keys()].sort((a, b) => a - b);
    if (!seqs.length) return;
    this.lastSeq = seqs[0] - 1;
    this.drain();
    this.flushPending();
  }

  nearBottom() {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 120;
  }

  scrollToEnd() {
    this.el.scrollTop = this.el.scrollHeight;
  }

  /**
   * @template {Element} E
   * @param {E} node
   * @returns {E}
   */
  add(node) {
    if (this.placeholder) {
      this.placeholder.remove();
      this.placeholder = null;
    }
    this.el.append(node);
    return node;
  }

  /**
   * @param {TimelineEvent} e
   * @returns {unknown}
   */
  apply(e) {
    const d = e.data;
    switch (e.type) {
      // --- agent-loop (core) events
      case 'message.delta': return this.delta(d.message_id, d.delta || '', e);
      case 'message.created': return this.created(d, e);
      case 'tool.started': return this.toolStarted(d.tool_call_id, d.tool_name, d.arguments, e);
      case 'tool.completed': return this.toolCompleted(d.tool_call_id, d.tool_name, d.arguments, d.result, d.error, d.duration_ms, e);
      case 'step.completed':
        this.usage.steps += 1;
        this.usage.input += (d.usage && d.usage.input_tokens) || 0;
        this.usage.output += (d.usage && d.usage.output_tokens) || 0;
        return null;
      case 'session.started':
        this.usage = { input: 0, output: 0, steps: 0 };
        return null;
      case 'step.started': return null;
      case 'session.completed': return this.turnEnded('completed', this.completedText(d), e);
      case 'session.cancelled': return this.turnEnded('cancelled', cancelledText(d), e);
      case 'session.failed': return this.failed(d, e);
      // --- tool calls that wait for a person's approval or the client's result
      case 'tool.approval_requested': return this.marker('approval', `Approval requested: ${d.tool_name}`, e);
      case 'tool.client_requested': return this.marker('waiting', `Waiting for the client to run ${d.tool_name}`, e);
      case 'tool.call_answered': return this.marker(`answer-${d.decision}`, this.answeredText(d), e);
      case 'session.waiting': return this.marker('waiting', d.status === 'waiting_for_client'
        ? 'Turn paused: waiting for the client' : 'Turn paused: waiting for approval', e);
      // --- hook events reported by external agents
      case 'session_start': return this.marker('started', 'Session started', e);
      case 'session_stop': return this.stopped(d, e);
      case 'message': return this.bubble(d.role === 'user' ? 'user' : 'assistant', messageText(d.content), e);
      case 'pre_tool': return this.hookPreTool(d, e);
      case 'post_tool': return this.hookPostTool(d, e);
      default: return this.marker('other', e.type, e);
    }
  }

  // --- messages

  /**
   * @param {'user' | 'assistant'} role
   * @param {string} text
   * @param {TimelineEvent} e
   * @param {{messageId?: string | null, streaming?: boolean}} [options]
   */
  bubble(role, text, e, { messageId = null, streaming = false } = {}) {
    const body = h('div', {
      class: `msg msg-${role}${streaming ? ' streaming' : ''}`, 'data-testid': `message-${role}`,
      'data-message-id': messageId, 'data-streaming': streaming ? 'true' : 'false', 'data-sequence': e.sequence,
    }, text);
    const row = h('div', { class: `msg-row msg-row-${role}` },
      h('div', { class: 'msg-meta' }, role === 'user' ? 'User' : 'Assistant', h('time', {}, fmtTime(e.created_at))),
      body);
    this.add(row);
    return body;
  }

  /**
   * @param {string} messageId
   * @param {string} text
   * @param {TimelineEvent} e
   */
  delta(messageId, text, e) {
    let body = this.bubbles.get(messageId);
    if (!body) {
      body = this.bubble('assistant', '', e, { messageId, streaming: true });
      this.bubbles.set(messageId, body);
    }
    body.append(text); // a text node per delta: cheap, and textContent is the whole text so far
  }

  /**
   * @param {Record<string, any>} d
   * @param {TimelineEvent} e
   */
  created(d, e) {
    const text = messageText(d.content);
    if (d.role === 'user') return this.bubble('user', text, e, { messageId: d.message_id });
    if (d.role !== 'assistant') return null; // tool_call / tool_result: shown as tool cards
    const body = this.bubbles.get(d.message_id);
    this.bubbles.delete(d.message_id);
    if (body) {
      if (!text) {
        body.parentElement?.remove();
        return null;
      }
      body.textContent = text; // the stored text is the truth; replaces the streamed pieces
      this.endStreaming(body);
      this.lastAnswer = { body, sequence: e.sequence };
      return body;
    }
    const shown = text ? this.bubble('assistant', text, e, { messageId: d.message_id }) : null;
    if (shown) this.lastAnswer = { body: shown, sequence: e.sequence };
    return shown;
  }

  /**
   * @param {HTMLElement} body
   * @param {boolean} [interrupted]
   */
  endStreaming(body, interrupted = false) {
    body.classList.remove('streaming');
    body.dataset.streaming = 'false';
    if (interrupted) body.classList.add('interrupted');
  }

  // --- tools

  /**
   * A tool card, added to the timeline.
   * @param {string | null} key
   * @param {string | undefined} name
   * @param {unknown} input
   * @param {TimelineEvent} e
   */
  toolCard(key, name, input, e) {
    const entry = toolCard(key, name, input, e.created_at);
    this.add(entry.card);
    return entry;
  }

  /**
   * @param {string} id
   * @param {string} name
   * @param {unknown} input
   * @param {TimelineEvent} e
   */
  toolStarted(id, name, input, e) {
    const entry = this.toolCard(id, name, input, e);
    if (id) this.tools.set(id, entry);
  }

  /**
   * @param {string} id
   * @param {string} name
   * @param {unknown} input
   * @param {unknown} output
   * @param {unknown} error
   * @param {number | null | undefined} durationMs
   * @param {TimelineEvent} e
   */
  toolCompleted(id, name, input, output, error, durationMs, e) {
    let entry = id ? this.tools.get(id) : null;
    if (!entry) entry = this.toolCard(id, name, input, e);
    this.tools.delete(id);
    finishTool(entry, output, error, durationMs);
  }

  /**
   * @param {Record<string, any>} d
   * @param {TimelineEvent} e
   */
  hookPreTool(d, e) {
    const id = d.tool_call_id || d.tool_use_id || null;
    const entry = this.toolCard(id, d.tool_name, d.tool_input, e);
    if (id) this.tools.set(id, entry);
    else this.openHookTools.push(entry);
  }

  /**
   * @param {Record<string, any>} d
   * @param {TimelineEvent} e
   */
  hookPostTool(d, e) {
    const id = d.tool_call_id || d.tool_use_id || null;
    let entry = id ? this.tools.get(id) : null;
    if (id) this.tools.delete(id);
    if (!entry && !id) {
      const i = this.openHookTools.findIndex((t) => t.name === d.tool_name);
      if (i >= 0) entry = this.openHookTools.splice(i, 1)[0];
    }
    if (!entry) entry = this.toolCard(id, d.tool_name, d.tool_input, e);
    let error = d.error;
    if ((error == null || error === '') && d.exit_code != null && d.exit_code !== 0) error = `exit code ${d.exit_code}`;
    finishTool(entry, d.tool_output, error, d.duration_ms);
  }

  // --- markers and errors

  /**
   * @param {string} kind
   * @param {string} text
   * @param {TimelineEvent} e
   */
  marker(kind, text, e) {
    return this.add(h('div', { class: `marker marker-${kind}`, 'data-testid': 'marker', 'data-kind': kind },
      h('span', {}, text), h('time', {}, fmtTime(e.created_at))));
  }

  /** @param {Record<string, any>} d */
  answeredText(d) {
    /** @type {Record<string, string>} */
    const decisions = { approved: 'approved', denied: 'denied', expired: 'expired (no answer in time)' };
    const what = decisions[d.decision]
      || d.decision || 'answered';
    return `${d.tool_name}: ${what}${d.reason ? ` (${d.reason})` : ''}`;
  }

  /** @param {Record<string, any>} d */
  completedText(d) {
    const parts = ['Turn completed'];
    if (this.usage.steps) parts.push(`${this.usage.steps} step${this.usage.steps === 1 ? '' : 's'}`);
    if (this.usage.input || this.usage.output) parts.push(`${this.usage.input} in / ${this.usage.output} out tokens`);
    if (d.reason && d.reason !== 'completed') parts.push(d.message || d.reason);
    return parts.join(' · ');
  }

  /**
   * @param {string} kind
   * @param {string} text
   * @param {TimelineEvent} e
   */
  turnEnded(kind, text, e) {
    for (const body of this.bubbles.values()) this.endStreaming(body, kind !== 'completed');
    this.bubbles.clear();
    // A turn that failed or was cancelled mid-answer has its text kept as a message, stored
    // (message.created) just before the turn's end: that answer was cut off.
    if (kind !== 'completed' && this.lastAnswer && this.lastAnswer.sequence === e.sequence - 1) {
      this.lastAnswer.body.classList.add('interrupted');
    }
    this.lastAnswer = null;
    for (const entry of this.tools.values()) {
      entry.card.dataset.state = 'interrupted';
      entry.state.textContent = kind;
    }
    this.tools.clear();
    return this.marker(kind, text, e);
  }

  /**
   * @param {Record<string, any>} d
   * @param {TimelineEvent} e
   */
  failed(d, e) {
    this.turnEnded('failed', 'Turn failed', e);
    return this.add(h('div', { class: 'error-banner', 'data-testid': 'error-banner', role: 'alert' },
      h('strong', {}, 'Error'), d.code ? h('code', {}, d.code) : null,
      h('span', { class: 'error-text' }, d.error || 'the turn failed')));
  }

  /**
   * @param {Record<string, any>} d
   * @param {TimelineEvent} e
   */
  stopped(d, e) {
    const failed = d.exit_code != null && d.exit_code !== 0;
    const detail = [d.reason, d.exit_code != null ? `exit code ${d.exit_code}` : null].filter(Boolean).join(', ');
    this.marker(failed ? 'failed' : 'stopped', `Session stopped${detail ? ` (${detail})` : ''}`, e);
    if (d.error) {
      this.add(h('div', { class: 'error-banner', 'data-testid': 'error-banner', role: 'alert' },
        h('strong', {}, 'Error'), h('span', { class: 'error-text' }, d.error)));
    }
  }
}

/**
 * What a `session.cancelled` marker says: why, and whether a turn or only queued messages.
 * @param {Record<string, any>} d
 */
function cancelledText(d) {
  const queued = (d.dropped_message_ids || []).length;
  const what = d.message_id == null && queued ? `${queued} queued message${queued > 1 ? 's' : ''} dropped` : 'Turn cancelled';
  return d.reason === 'server shutting down' ? `${what}: the server was shutting down` : what;
}
