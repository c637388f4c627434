// @ts-check
// Agents: the list (#/agents) and the create / edit form (#/agents/new, #/agents/<id>)
// with capability picking (and, per capability, whether its tools wait for an approval)
// and the default model.

import { api } from './api.js';
import { badge, confirmButton, field, fmtDateTime, formValues, h, mount, toast } from './dom.js';
import { Pager } from './paging.js';

/** @typedef {import('./api.js').Agent} Agent */
/** @typedef {import('./api.js').CapabilitySetting} CapabilitySetting */
/** @typedef {import('./api.js').Model} Model */
/** @typedef {import('./scope.js').Scope} Scope */

/** @param {Model} m */
function modelLabel(m) {
  return `${m.provider_name} / ${m.display_name || m.model_id}${m.status === 'disabled' ? ' (disabled)' : ''}`;
}

/**
 * A capability's row in the form: its label (checkbox and details), then its own "Requires
 * approval" checkbox, usable only while the capability is ticked (unticking clears it).
 * @param {HTMLLabelElement} label
 * @param {string} id
 * @param {string} name
 * @param {boolean} requiresApproval
 */
function capabilityRow(label, id, name, requiresApproval) {
  const box = /** @type {HTMLInputElement} */ (label.querySelector('input'));
  const approval = h('input', { type: 'checkbox', name: 'requires_approval', 'data-group': 'requires_approval', value: id,
    'data-testid': 'requires-approval', 'aria-label': `Requires approval for ${name}`,
    checked: box.checked && requiresApproval, disabled: !box.checked });
  box.addEventListener('change', () => {
    approval.disabled = !box.checked;
    if (!box.checked) approval.checked = false;
  });
  return h('div', { class: 'capability-row' }, label,
    h('label', { class: 'inline-check approval-check', title: 'Its tools wait for a person to approve each call' },
      approval, 'Requires approval'));
}

export class Agents {
  /** @param {{startSession: (agentId: string) => unknown}} options */
  constructor({ startSession }) {
    this.startSession = startSession; // (agentId) => opens the "New session" dialog
    this.showArchived = false;
  }

  /**
   * @param {HTMLElement} main
   * @param {Scope} scope
   */
  async list(main, scope) {
    const body = h('div', { class: 'card-body' }, h('p', { class: 'muted' }, 'Loading agents…'));
    const archived = h('input', { type: 'checkbox', 'data-testid': 'show-archived', checked: this.showArchived });
    archived.addEventListener('change', () => {
      this.showArchived = archived.checked;
      this.list(main, scope);
    });
    mount(main, h('section', { class: 'page', 'data-testid': 'agents-page' },
      h('div', { class: 'page-head' },
        h('h1', {}, 'Agents'),
        h('label', { class: 'inline-check' }, archived, 'Show archived'),
        h('a', { class: 'btn btn-primary', href: '#/agents/new', 'data-testid': 'new-agent' }, 'New agent')),
      h('div', { class: 'card' }, body)));
    const status = this.showArchived ? 'all' : 'active';
    /** @type {import('./api.js').Page<Agent>} */
    let first;
    /** @type {Model[]} */
    let models;
    try {
      [first, models] = await Promise.all([api.agentsPage(status, 0), api.listModels()]);
    } catch (err) {
      if (!scope.disposed) mount(body, h('p', { class: 'form-error' }, `Cannot load agents: ${err.message}`));
      return;
    }
    if (scope.disposed || !body.isConnected) return; // another view, or the list again (archived ticked)
    const modelNames = new Map(models.map((m) => [m.id, modelLabel(m)]));
    if (!first.data.length) {
      mount(body, h('p', { class: 'muted' }, 'No agents yet. ', h('a', { href: '#/agents/new' }, 'Create the first one'), '.'));
      return;
    }
    const rows = h('tbody', {});
    const pager = new Pager({
      load: (offset) => api.agentsPage(status, offset), row: (a) => this.row(a, modelNames), body: rows, scope,
      testid: 'agents-more',
    });
    pager.add(first);
    mount(body, h('table', { class: 'table', 'data-testid': 'agent-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Capabilities', 'Default model', 'Status', 'Updated', ''].map((t) => h('th', {}, t)))),
      rows), pager.footer);
  }

  /**
   * @param {Agent} a
   * @param {Map<string, string>} modelNames
   */
  row(a, modelNames) {
    return h('tr', { 'data-testid': 'agent-row', 'data-agent-id': a.id },
      h('td', {}, h('a', { href: `#/agents/${a.id}`, class: 'strong', 'data-testid': 'agent-name' }, a.name),
        a.description ? h('div', { class: 'muted small' }, a.description) : null),
      h('td', {}, a.capability_ids.length
        ? a.capability_ids.map((c) => h('span', { class: 'chip' }, c))
        : h('span', { class: 'muted' }, 'none')),
      h('td', {}, a.default_model_id ? (modelNames.get(a.default_model_id) || a.default_model_id)
        : h('span', { class: 'muted' }, 'provider default')),
      h('td', {}, badge(a.status, 'agent-status')),
      h('td', { class: 'muted small' }, fmtDateTime(a.updated_at)),
      h('td', { class: 'row-actions' },
        a.status === 'active'
          ? h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'agent-start-session',
            onclick: () => this.startSession(a.id) }, 'New session')
          : null,
        h('a', { class: 'btn btn-small', href: `#/agents/${a.id}` }, 'Edit')));
  }

  /**
   * @param {HTMLElement} main
   * @param {string | null} id null: a new agent
   * @param {Scope} scope
   */
  async form(main, id, scope) {
    const page = h('section', { class: 'page', 'data-testid': 'agent-page' },
      h('div', { class: 'page-head' }, h('h1', {}, id ? 'Edit agent' : 'New agent'),
        h('a', { class: 'btn', href: '#/agents' }, 'Back to agents')),
      h('p', { class: 'muted' }, 'Loading…'));
    mount(main, page);
    /** @type {Agent | null} */
    let agent = null;
    /** @type {CapabilitySetting[]} */
    let settings;
    /** @type {import('./api.js').Capability[]} */
    let capabilities;
    /** @type {Model[]} */
    let models;
    try {
      [agent, settings, capabilities, models] = await Promise.all([id ? api.getAgent(id) : null,
        id ? api.capabilitySettings(id) : [], api.listCapabilities(), api.listModels()]);
    } catch (err) {
      if (scope.disposed) return;
      mount(page, h('h1', {}, 'Agent'), h('p', { class: 'form-error' }, err.message), h('a', { href: '#/agents' }, 'Back to agents'));
      return;
    }
    if (scope.disposed) return;
    /** @type {Pick<Agent, 'name' | 'description' | 'system_prompt' | 'tags' | 'default_model_id' | 'capability_ids'> & {client_tools?: unknown[]}} */
    const a = agent || { name: '', description: '', system_prompt: '', tags: [], default_model_id: null, capability_ids: [],
      client_tools: [] };
    const error = h('div', { class: 'form-error', 'data-testid': 'form-error', role: 'alert' });
    const chosen = new Set(a.capability_ids);
    const known = new Set(capabilities.map((c) => c.id));
    // requires_approval as loaded: save() sends the settings only when one of them changed
    const approvals = new Map(settings.map((s) => [s.id, s.requires_approval]));
    const capList = h('div', { class: 'capabilities', 'data-testid': 'capability-list' },
      capabilities.map((c) => capabilityRow(h('label', { class: 'capability', 'data-testid': 'capability', 'data-capability-id': c.id },
        h('input', { type: 'checkbox', name: 'capability', 'data-group': 'capability_ids', value: c.id, checked: chosen.has(c.id),
          disabled: !['available', 'active'].includes(c.status) && !chosen.has(c.id) }),
        h('div', {},
          h('div', { class: 'capability-name' }, c.name, ' ', h('code', { class: 'muted' }, c.id),
            !['available', 'active'].includes(c.status) ? h('span', { class: 'chip' }, c.status) : null),
          h('div', { class: 'muted small' }, c.description),
          c.tools.length ? h('div', { class: 'small' }, 'Tools: ', c.tools.map((t) => h('code', { class: 'tool-chip', title: t.description }, t.name))) : null)),
      c.id, `${c.name} (${c.id})`, approvals.get(c.id) || false)),
      // capabilities the agent has but the registry no longer knows: keep them (and their setting) unless unticked
      a.capability_ids.filter((c) => !known.has(c)).map((c) => capabilityRow(h('label', { class: 'capability' },
        h('input', { type: 'checkbox', name: 'capability', 'data-group': 'capability_ids', value: c, checked: true }),
        h('div', {}, h('code', {}, c), ' ', h('span', { class: 'muted small' }, '(unknown capability)'))),
      c, c, approvals.get(c) || false)));
    const modelSelect = h('select', { name: 'default_model_id', 'data-testid': 'agent-model' },
      h('option', { value: '' }, 'Provider default'),
      models.map((m) => h('option', { value: m.id, selected: m.id === a.default_model_id }, modelLabel(m))));
    const save = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'agent-save' }, id ? 'Save changes' : 'Create agent');
    const form = h('form', { class: 'form card', 'data-testid': 'agent-form', novalidate: true },
      h('div', { class: 'form-grid' },
        field('Name', h('input', { name: 'name', required: true, maxlength: 200, value: a.name, 'data-testid': 'agent-name-input', autocomplete: 'off' })),
        field('Tags', h('input', { name: 'tags', value: a.tags.join(', '), placeholder: 'comma, separated', 'data-testid': 'agent-tags' })),
        field('Description', h('input', { name: 'description', value: a.description || '', 'data-testid': 'agent-description' })),
        field('Default model', modelSelect)),
      field('System prompt', h('textarea', { name: 'system_prompt', rows: 6, 'data-testid': 'agent-system-prompt' }, a.system_prompt)),
      h('fieldset', { class: 'fieldset' }, h('legend', {}, 'Capabilities'),
        capabilities.length || a.capability_ids.length ? capList : h('p', { class: 'muted' }, 'No capabilities available.')),
      // Tools the client runs (docs/api.md §5.12): edited as the JSON the API takes.
      field('Client tools (JSON list of {"name", "description", "parameters"})', h('textarea', {
        name: 'client_tools', rows: 4, spellcheck: 'false', class: 'mono', 'data-testid': 'agent-client-tools',
      }, JSON.stringify(a.client_tools || [], null, 2))),
      error,
      h('div', { class: 'form-actions' }, save,
        agent && agent.status === 'active' ? h('button', { type: 'button', class: 'btn', 'data-testid': 'agent-new-session',
          onclick: () => this.startSession(agent.id) }, 'New session') : null,
        agent && agent.status === 'active'
          ? confirmButton('Archive', 'Archive agent', () => this.archive(agent), 'agent-archive') : null,
        agent && agent.status === 'archived' ? h('span', { class: 'muted' }, 'Archived: readable, but no new sessions.') : null));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.save(form, agent, approvals, error, save);
    });
    mount(page, page.firstChild, form);
  }

  /**
   * Creates or PATCHes the agent; then, if a "Requires approval" box differs from what was
   * loaded (new agent: if one is ticked), PUTs the capabilities with their settings.
   * @param {HTMLFormElement} form
   * @param {Agent | null} agent null: create one
   * @param {Map<string, boolean>} approvals requires_approval by capability id, as loaded
   * @param {HTMLElement} error
   * @param {HTMLButtonElement} button
   */
  async save(form, agent, approvals, error, button) {
    const v = formValues(form);
    /** @type {string[]} */
    const ticked = v.capability_ids || [];
    // The agent's order is kept (capability_ids is ordered, §3.3); newly ticked ones follow.
    const kept = agent ? agent.capability_ids.filter((c) => ticked.includes(c)) : [];
    const capabilityIds = [...kept, ...ticked.filter((c) => !kept.includes(c))];
    let clientTools;
    try {
      clientTools = JSON.parse(v.client_tools.trim() || '[]');
    } catch (err) {
      error.textContent = `Client tools are not valid JSON: ${err.message}`;
      return;
    }
    /** @type {Record<string, unknown>} */
    const body = {
      name: v.name.trim(),
      system_prompt: v.system_prompt,
      description: v.description.trim() || null,
      tags: v.tags.split(',').map((/** @type {string} */ t) => t.trim()).filter(Boolean),
      default_model_id: v.default_model_id || null,
      capability_ids: capabilityIds,
      client_tools: clientTools,
    };
    if (!body.name) {
      error.textContent = 'The name is required.';
      return;
    }
    const needsApproval = new Set(v.requires_approval || []);
    /** @type {CapabilitySetting[]} */
    const settings = capabilityIds.map((c) => ({ id: c, requires_approval: needsApproval.has(c) }));
    const settingsChanged = settings.some((s) => s.requires_approval !== (approvals.get(s.id) || false));
    error.textContent = '';
    button.disabled = true;
    /** @type {Agent} */
    let saved;
    try {
      if (agent) {
        saved = await api.updateAgent(agent.id, body);
      } else {
        if (!body.description) delete body.description;
        if (!body.default_model_id) delete body.default_model_id;
        saved = await api.createAgent(body);
      }
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
      return;
    }
    if (settingsChanged) {
      try {
        await api.setCapabilitySettings(saved.id, settings);
      } catch (err) {
        const message = `Agent “${saved.name}” was saved, but its approval settings were not: ${err.message}`;
        toast(message, 'error', 10000);
        button.disabled = false;
        if (agent) error.textContent = message; // the form keeps the choices: Save tries again
        else location.hash = `#/agents/${saved.id}`; // edit the new agent (as the server has it), not create another
        return;
      }
    }
    toast(agent ? 'Agent saved' : `Agent “${saved.name}” created`, 'success');
    button.disabled = false;
    location.hash = '#/agents';
  }

  /** @param {Agent} agent */
  async archive(agent) {
    try {
      await api.archiveAgent(agent.id);
      toast(`Agent “${agent.name}” archived`, 'info');
      location.hash = '#/agents';
    } catch (err) {
      toast(`Archive failed: ${err.message}`, 'error');
    }
  }
}
