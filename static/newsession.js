// @ts-check
// The "New session" dialog: pick an active agent, optionally a title; creating the session
// opens it.

import { api } from './api.js';
import { h, mount } from './dom.js';

export class NewSessionDialog {
  /** @param {HTMLDialogElement} dialog the <dialog> in index.html */
  constructor(dialog) {
    this.dialog = dialog;
    this.form = /** @type {HTMLFormElement} */ (dialog.querySelector('form'));
    this.select = /** @type {HTMLSelectElement} */ (this.form.elements.namedItem('agent_id'));
    this.title = /** @type {HTMLInputElement} */ (this.form.elements.namedItem('title'));
    this.error = /** @type {HTMLElement} */ (this.form.querySelector('.form-error'));
    this.form.addEventListener('submit', (e) => this.submit(e));
    dialog.querySelector('[data-action="close"]')?.addEventListener('click', () => dialog.close());
  }

  /** @param {string | null} [agentId] the agent to preselect */
  async open(agentId = null) {
    const { select, error } = this;
    error.textContent = '';
    this.title.value = '';
    mount(select, h('option', { value: '' }, 'Loading agents…'));
    if (!this.dialog.open) this.dialog.showModal();
    try {
      const agents = await api.listAgents('active');
      if (!agents.length) {
        mount(select, h('option', { value: '' }, 'No agents yet'));
        mount(error, 'Create an agent first: ',
          h('a', { href: '#/agents/new', 'data-action': 'close', onclick: () => this.dialog.close() }, 'New agent'));
        return;
      }
      // Names need not be unique (§3.3): agents that share one are told apart by their description, else their id.
      const named = new Map();
      for (const a of agents) named.set(a.name, (named.get(a.name) || 0) + 1);
      const label = (/** @type {{id: string, name: string, description?: string | null}} */ a) => (named.get(a.name) > 1
        ? `${a.name} (${a.description ? a.description.slice(0, 40) : a.id.slice(0, 8)})` : a.name);
      mount(select, agents.map((a) => h('option', { value: a.id, selected: a.id === agentId }, label(a))));
    } catch (err) {
      error.textContent = `Cannot load agents: ${err.message}`;
    }
  }

  /** @param {SubmitEvent} e */
  async submit(e) {
    e.preventDefault();
    const agentId = this.select.value;
    if (!agentId) {
      this.error.textContent = 'Pick an agent.';
      return;
    }
    const button = /** @type {HTMLButtonElement} */ (this.form.querySelector('[type="submit"]'));
    button.disabled = true;
    try {
      const session = await api.createSession(agentId, this.title.value.trim());
      this.dialog.close();
      location.hash = `#/sessions/${encodeURIComponent(session.id)}`;
    } catch (err) {
      this.error.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  }
}
