// @ts-check
// A tool call in the timeline: a card with the tool's name, its input, and (once it has
// finished) its output or error. Timeline decides when to add and finish them.

import { fmtTime, h, prettyJson } from './dom.js';

/** @typedef {{card: HTMLElement, state: HTMLElement, duration: HTMLElement, result: HTMLElement, name: string}} ToolEntry */

/**
 * A running tool's card (not yet in the page).
 * @param {string | null} key the tool call's id (data-tool-call-id)
 * @param {string | undefined} name
 * @param {unknown} input
 * @param {string | undefined} createdAt
 * @returns {ToolEntry}
 */
export function toolCard(key, name, input, createdAt) {
  const state = h('span', { class: 'tool-state', 'data-testid': 'tool-state' }, 'running');
  const duration = h('span', { class: 'tool-duration' });
  const result = h('div', { class: 'tool-section tool-result' },
    h('div', { class: 'tool-label' }, 'Output'), h('div', { class: 'tool-waiting' }, 'waiting for the result…'));
  const card = h('div', { class: 'tool-card', 'data-testid': 'tool-card', 'data-tool-call-id': key, 'data-state': 'running' },
    h('div', { class: 'tool-head' },
      h('span', { class: 'tool-icon', 'aria-hidden': 'true' }, '⚙'),
      h('span', { class: 'tool-name', 'data-testid': 'tool-name' }, name || 'tool'),
      state, duration, h('time', {}, fmtTime(createdAt))),
    h('div', { class: 'tool-body' },
      h('div', { class: 'tool-section' }, h('div', { class: 'tool-label' }, 'Input'),
        h('pre', { class: 'json', 'data-testid': 'tool-input' }, input == null ? '' : prettyJson(input))),
      result));
  return { card, state, duration, result, name: name || '' };
}

/**
 * Show a tool's result: its output, or its error (and any output it gave too).
 * @param {ToolEntry} entry
 * @param {unknown} output
 * @param {unknown} error
 * @param {number | null | undefined} durationMs
 */
export function finishTool(entry, output, error, durationMs) {
  const failed = error != null && error !== '';
  entry.card.dataset.state = failed ? 'error' : 'ok';
  entry.state.textContent = failed ? 'error' : 'done';
  if (durationMs != null) entry.duration.textContent = `${durationMs} ms`;
  const label = h('div', { class: 'tool-label' }, failed ? 'Error' : 'Output');
  const body = failed
    ? h('pre', { class: 'tool-error', 'data-testid': 'tool-error' }, typeof error === 'string' ? error : prettyJson(error))
    : h('pre', { class: 'json', 'data-testid': 'tool-output' }, output === undefined ? '' : prettyJson(output));
  entry.result.replaceChildren(label, body);
  if (failed && output !== undefined && output !== null) {
    entry.result.append(h('div', { class: 'tool-label' }, 'Output'),
      h('pre', { class: 'json', 'data-testid': 'tool-output' }, prettyJson(output)));
  }
}
