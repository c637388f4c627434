// Small DOM helpers shared by every view. Text always goes in as text nodes, never as
// HTML, so nothing a model, a tool or an external agent sends can inject markup.

/** h('div', {class: 'x', 'data-testid': 'y', onclick: fn}, child, 'text', [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'value' && 'value' in el) el.value = value;
    else if (key === 'checked' || key === 'selected' || key === 'disabled') el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's content. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

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

export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function fmtDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

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

/** A status pill; `testid` defaults to status-badge. waiting_for_approval reads "waiting for approval". */
export function badge(status, testid = 'status-badge') {
  return h('span', { class: `badge badge-${status || 'unknown'}`, 'data-testid': testid, 'data-status': status || '' },
    status ? String(status).replace(/_/g, ' ') : 'unknown');
}

export function toast(message, kind = 'info', ms = 4000) {
  const box = document.getElementById('toasts');
  if (!box) return;
  while (box.children.length >= 3) box.firstChild.remove(); // a few at a time, newest last
  const el = h('div', { class: `toast toast-${kind}`, 'data-testid': 'toast', role: kind === 'error' ? 'alert' : 'status' },
    message);
  el.title = 'Click to dismiss';
  el.addEventListener('click', () => el.remove());
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/** A labelled form field: field('Name', input, 'hint'). */
export function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

/** A button that asks for a second click before doing something destructive. */
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

/** Form values by input name; checkboxes give booleans. */
export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
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
