// @ts-check
// Small DOM helpers shared by every view. Text always goes in as text nodes, never as
// HTML, so nothing a model, a tool or an external agent sends can inject markup.

/**
 * A child for h() and mount(): nodes, text, nothing (null, undefined, false) or lists of them.
 * @typedef {Node | string | number | null | undefined | false | ChildList} Child
 * @typedef {ReadonlyArray<Child>} ChildList
 */
/** Attributes for h(): null, undefined and false leave one out; `onclick` etc. add listeners.
 * @typedef {Record<string, any>} Attrs */

/**
 * h('div', {class: 'x', 'data-testid': 'y', onclick: fn}, child, 'text', [more])
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Attrs | null} [attrs]
 * @param {...Child} children
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  /** @type {any} */
  const any = el; // value / checked / selected / disabled exist on some elements only
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' && 'value' in el) any.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled') any[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/**
 * @param {Element} el
 * @param {Child[]} children
 */
function append(el, children) {
  for (const child of /** @type {unknown[]} */ (children).flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/**
 * Replace an element's content.
 * @template {Element} E
 * @param {E} el
 * @param {...Child} children
 * @returns {E}
 */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** @param {unknown} value */
export function prettyJson(value) {
  if (value === undefined) return '';
  if (typeof value === 'string') {
    try {
      return JSON.stringify(JSON.parse(value), null, 2); // a JSON string from a tool: show it structured
    } catch {
      return value;
    }
  }
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** The time of day, and the date too when it is not today (an event reported late, or
 * a timeline read the next day).
 * @param {string | null | undefined} iso */
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
}

/** @param {string | null | undefined} iso */
export function fmtDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

/** @param {string | null | undefined} iso */
export function relTime(iso) {
  if (!iso) return '';
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  if (Number.isNaN(seconds)) return '';
  if (seconds < 10) return 'just now';
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ago`;
  return new Date(iso).toLocaleDateString();
}

/**
 * A status pill; `testid` defaults to status-badge. waiting_for_approval reads "waiting for approval".
 * @param {string | null | undefined} status
 * @param {string} [testid]
 */
export function badge(status, testid = 'status-badge') {
  return h('span', { class: `badge badge-${status || 'unknown'}`, 'data-testid': testid, 'data-status': status || '' },
    status ? String(status).replace(/_/g, ' ') : 'unknown');
}

/**
 * @param {string} message
 * @param {'info' | 'success' | 'error'} [kind]
 * @param {number} [ms]
 */
export function toast(message, kind = 'info', ms = 4000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  while (box.firstChild && box.children.length >= 3) box.firstChild.remove(); // a few at a time, newest last
  const el = h('div', { class: `toast toast-${kind}`, 'data-testid': 'toast', role: kind === 'error' ? 'alert' : 'status' },
    message);
  el.title = 'Click to dismiss';
  el.addEventListener('click', () => el.remove());
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/**
 * A labelled form field: field('Name', input, 'hint').
 * @param {string} label
 * @param {Element} control
 * @param {Child} [hint]
 */
export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

/**
 * A button that asks for a second click before doing something destructive.
 * @param {string} label
 * @param {string} confirmLabel
 * @param {() => unknown} onConfirm
 * @param {string} testid
 * @param {string} [size]
 */
export function confirmButton(label, confirmLabel, onConfirm, testid, size = '') {
  const cls = size ? ` btn-${size}` : '';
  const wrap = h('span', { class: 'confirm-wrap' });
  const first = h('button', { type: 'button', class: `btn btn-danger${cls}`, 'data-testid': testid }, label);
  first.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: `btn btn-danger${cls}`, 'data-testid': `${testid}-confirm` }, confirmLabel);
    const no = h('button', { type: 'button', class: `btn${cls}`, 'data-testid': `${testid}-keep` }, 'Keep');
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await onConfirm();
      } finally {
        yes.disabled = false;
      }
    });
    no.addEventListener('click', () => mount(wrap, first));
    mount(wrap, yes, no);
    yes.focus();
  });
  wrap.append(first);
  return wrap;
}

/**
 * Form values by input name; checkboxes give booleans, checkbox groups (data-group) lists.
 * @param {HTMLFormElement} form
 * @returns {Record<string, any>}
 */
export function formValues(form) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const control of form.elements) {
    const el = /** @type {HTMLInputElement} */ (control);
    if (!el.name) continue;
    if (el.type === 'checkbox') {
      if (el.dataset.group) {
        const list = (out[el.dataset.group] ||= []);
        if (el.checked) list.push(el.value);
      } else {
        out[el.name] = el.checked;
      }
    } else {
      out[el.name] = el.value;
    }
  }
  return out;
}
