// @ts-check
// LLM providers and their models: the list (#/providers), a provider's page
// (#/providers/new, #/providers/<id>) with its models. API keys are write-only: the form
// never shows a stored key (only the server's hint, e.g. "sk-...abcd") and is emptied after saving.

import { api } from './api.js';
import { badge, confirmButton, field, formValues, h, mount, toast } from './dom.js';
import { Pager } from './paging.js';

const TYPES = ['openai', 'anthropic', 'azure_openai', 'ollama', 'custom'];

/** @typedef {import('./api.js').Provider} Provider */
/** @typedef {import('./api.js').Model} Model */
/** @typedef {import('./scope.js').Scope} Scope */

/** @param {Provider} p */
function keyStatus(p) {
  return p.api_key_set
    ? h('span', { class: 'key-hint', 'data-testid': 'provider-key-hint' }, h('code', {}, p.api_key_hint || 'set'))
    : h('span', { class: 'muted', 'data-testid': 'provider-key-hint' }, 'no key');
}

/**
 * @param {string[]} headings
 * @param {HTMLElement} rows the tbody
 * @param {string} testid
 */
function table(headings, rows, testid) {
  return h('table', { class: 'table', 'data-testid': testid },
    h('thead', {}, h('tr', {}, headings.map((t) => h('th', {}, t)))), rows);
}

export class Providers {
  /**
   * @param {HTMLElement} main
   * @param {Scope} scope
   */
  async list(main, scope) {
    const body = h('div', { class: 'card-body' }, h('p', { class: 'muted' }, 'Loading providers…'));
    mount(main, h('section', { class: 'page', 'data-testid': 'providers-page' },
      h('div', { class: 'page-head' }, h('h1', {}, 'LLM providers & models'),
        h('a', { class: 'btn btn-primary', href: '#/providers/new', 'data-testid': 'new-provider' }, 'Add provider')),
      h('div', { class: 'card' }, body)));
    /** @type {import('./api.js').Page<Provider>} */
    let first;
    /** @type {Model[]} */
    let models;
    try {
      [first, models] = await Promise.all([api.providersPage(0), api.listModels()]);
    } catch (err) {
      if (!scope.disposed) mount(body, h('p', { class: 'form-error' }, `Cannot load providers: ${err.message}`));
      return;
    }
    if (scope.disposed) return;
    if (!first.data.length) {
      mount(body, h('p', { class: 'muted' }, 'No providers yet. ', h('a', { href: '#/providers/new' }, 'Add one'),
        ' so agents have a model to talk to.'));
      return;
    }
    const rows = h('tbody', {});
    const pager = new Pager({ load: (offset) => api.providersPage(offset), row: (p) => this.row(p, models), body: rows, scope,
      testid: 'providers-more' });
    pager.add(first);
    mount(body, table(['Name', 'Type', 'Base URL', 'API key', 'Models', 'Status', ''], rows, 'provider-table'), pager.footer);
  }

  /**
   * @param {Provider} p
   * @param {Model[]} models every model (their chips)
   */
  row(p, models) {
    const own = models.filter((m) => m.provider_id === p.id);
    return h('tr', { 'data-testid': 'provider-row', 'data-provider-id': p.id },
      h('td', {}, h('a', { class: 'strong', href: `#/providers/${p.id}`, 'data-testid': 'provider-name' }, p.name),
        p.is_default ? h('span', { class: 'chip chip-accent' }, 'default') : null),
      h('td', {}, p.provider_type),
      h('td', { class: 'small' }, p.base_url ? h('code', {}, p.base_url) : h('span', { class: 'muted' }, 'built-in')),
      h('td', {}, keyStatus(p)),
      h('td', {}, own.length ? own.map((m) => h('span', { class: `chip${m.is_default ? ' chip-accent' : ''}` },
        m.display_name || m.model_id)) : h('span', { class: 'muted' }, 'none')),
      h('td', {}, badge(p.status, 'provider-status')),
      h('td', { class: 'row-actions' }, h('a', { class: 'btn btn-small', href: `#/providers/${p.id}` }, 'Manage')));
  }

  /**
   * @param {HTMLElement} main
   * @param {string | null} id null: a new provider
   * @param {Scope} scope
   */
  async detail(main, id, scope) {
    const title = h('h1', {}, id ? 'Provider' : 'Add provider');
    const head = h('div', { class: 'page-head' }, title, h('a', { class: 'btn', href: '#/providers' }, 'Back to providers'));
    const page = h('section', { class: 'page', 'data-testid': 'provider-page' }, head, h('p', { class: 'muted' }, 'Loading…'));
    mount(main, page);
    /** @type {Provider | null} */
    let provider = null;
    if (id) {
      try {
        provider = await api.getProvider(id);
      } catch (err) {
        if (scope.disposed) return;
        mount(page, h('h1', {}, 'Provider'), h('p', { class: 'form-error' }, err.message), h('a', { href: '#/providers' }, 'Back to providers'));
        return;
      }
      if (scope.disposed) return;
    }
    if (provider) title.textContent = provider.name;
    const models = h('div', { class: 'models-slot' });
    mount(page, head, this.providerForm(provider, () => this.detail(main, id, scope)), provider ? models : null);
    if (provider) this.renderModels(models, provider, scope);
  }

  /**
   * @param {Provider | null} p null: a new one
   * @param {() => unknown} reload shows the saved provider again
   */
  providerForm(p, reload) {
    const editing = Boolean(p);
    /** @type {Pick<Provider, 'name' | 'provider_type' | 'base_url' | 'api_version' | 'is_default' | 'status'>} */
    const v = p || { name: '', provider_type: 'openai', base_url: '', api_version: '', is_default: false, status: 'active' };
    const error = h('div', { class: 'form-error', 'data-testid': 'form-error', role: 'alert' });
    const keyInput = h('input', { name: 'api_key', type: 'password', autocomplete: 'new-password', 'data-testid': 'provider-api-key',
      placeholder: p && p.api_key_set ? 'Leave blank to keep the stored key' : 'sk-…', spellcheck: 'false' });
    const clearKey = p && p.api_key_set
      ? h('label', { class: 'inline-check' }, h('input', { type: 'checkbox', name: 'clear_key', 'data-testid': 'provider-clear-key' }),
        'Remove the stored key')
      : null;
    const save = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'provider-save' }, editing ? 'Save provider' : 'Add provider');
    const form = h('form', { class: 'form card', 'data-testid': 'provider-form', novalidate: true },
      h('div', { class: 'form-grid' },
        field('Name', h('input', { name: 'name', required: true, value: v.name, 'data-testid': 'provider-name-input', autocomplete: 'off' })),
        field('Type', h('select', { name: 'provider_type', 'data-testid': 'provider-type' },
          TYPES.map((t) => h('option', { value: t, selected: t === v.provider_type }, t)))),
        field('Base URL', h('input', { name: 'base_url', type: 'url', value: v.base_url || '', placeholder: 'default for the type',
          'data-testid': 'provider-base-url' }), 'Optional; for proxies, Azure, Ollama or compatible servers.'),
        field('API version', h('input', { name: 'api_version', value: v.api_version || '', 'data-testid': 'provider-api-version' }),
          'Azure OpenAI only.'),
        field('API key', keyInput, p
          ? h('span', {}, 'Write-only. Stored key: ', keyStatus(p))
          : 'Write-only: stored encrypted and never shown again.'),
        field('Status', h('select', { name: 'status', 'data-testid': 'provider-status-select' },
          ['active', 'disabled'].map((s) => h('option', { value: s, selected: s === v.status }, s))))),
      h('div', { class: 'form-row' },
        h('label', { class: 'inline-check' }, h('input', { type: 'checkbox', name: 'is_default', checked: v.is_default,
          'data-testid': 'provider-default' }), 'Default provider'),
        clearKey),
      error,
      h('div', { class: 'form-actions' }, save,
        p ? confirmButton('Delete provider', 'Delete provider and its models', () => this.remove(p), 'provider-delete') : null));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = formValues(form);
      /** @type {Record<string, unknown>} */
      const body = {
        name: f.name.trim(), provider_type: f.provider_type, base_url: f.base_url.trim() || null,
        api_version: f.api_version.trim() || null, is_default: f.is_default, status: f.status,
      };
      if (f.clear_key) body.api_key = null;
      else if (f.api_key) body.api_key = f.api_key;
      if (!body.name) {
        error.textContent = 'The name is required.';
        return;
      }
      error.textContent = '';
      save.disabled = true;
      try {
        const saved = p ? await api.updateProvider(p.id, body) : await api.createProvider(body);
        keyInput.value = ''; // never keep a key in the page longer than needed
        toast(editing ? 'Provider saved' : `Provider “${saved.name}” added`, 'success');
        if (editing) reload();
        else location.hash = `#/providers/${saved.id}`;
      } catch (err) {
        error.textContent = err.message;
      } finally {
        save.disabled = false;
      }
    });
    return form;
  }

  /** @param {Provider} p */
  async remove(p) {
    try {
      await api.deleteProvider(p.id);
      toast(`Provider “${p.name}” deleted`, 'info');
      location.hash = '#/providers';
    } catch (err) {
      toast(`Delete failed: ${err.message}`, 'error');
    }
  }

  /**
   * The provider's models, a page at a time, with the form to add (or edit) one.
   * @param {HTMLElement} slot
   * @param {Provider} provider
   * @param {Scope} scope
   */
  async renderModels(slot, provider, scope) {
    /** @type {import('./api.js').Page<Model>} */
    let first;
    try {
      first = await api.modelsPage(provider.id, 0);
    } catch (err) {
      if (!scope.disposed) mount(slot, h('p', { class: 'form-error' }, `Cannot load models: ${err.message}`));
      return;
    }
    if (scope.disposed) return;
    const reload = () => this.renderModels(slot, provider, scope);
    const formSlot = h('div', {});
    /** @param {Model | null} model */
    const showForm = (model) => mount(formSlot, this.modelForm(provider, model, reload));
    /** @param {Model} m */
    const row = (m) => h('tr', { 'data-testid': 'model-row', 'data-model-id': m.id },
      h('td', {}, h('code', {}, m.model_id), m.is_default ? h('span', { class: 'chip chip-accent' }, 'default') : null),
      h('td', {}, m.display_name || h('span', { class: 'muted' }, '—')),
      h('td', {}, m.context_window ? m.context_window.toLocaleString() : h('span', { class: 'muted' }, '—')),
      h('td', {}, badge(m.status, 'model-status')),
      h('td', { class: 'row-actions' },
        h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'model-edit', onclick: () => showForm(m) }, 'Edit'),
        confirmButton('Delete', 'Delete model', async () => {
          try {
            await api.deleteModel(m.id);
            toast(`Model ${m.model_id} deleted`, 'info');
            reload();
          } catch (err) {
            toast(`Delete failed: ${err.message}`, 'error');
          }
        }, 'model-delete', 'small')));
    const rows = h('tbody', {});
    const pager = new Pager({ load: (offset) => api.modelsPage(provider.id, offset), row, body: rows, scope, testid: 'models-more' });
    pager.add(first);
    mount(slot, h('section', { class: 'card', 'data-testid': 'models-section' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Models'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => showForm(null) }, 'Add model')),
      first.data.length
        ? [table(['Model id', 'Display name', 'Context window', 'Status', ''], rows, 'model-table'), pager.footer]
        : h('p', { class: 'muted' }, 'No models yet. Sessions need a model: add one below.'),
      formSlot));
    showForm(null);
  }

  /**
   * @param {Provider} provider
   * @param {Model | null} m null: a new one
   * @param {() => unknown} done
   */
  modelForm(provider, m, done) {
    const editing = Boolean(m);
    const v = m || { model_id: '', display_name: '', context_window: null, is_default: false, status: 'active' };
    const error = h('div', { class: 'form-error', 'data-testid': 'form-error', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'model-save' }, editing ? 'Save model' : 'Add model');
    const form = h('form', { class: 'form form-inline-card', 'data-testid': 'model-form', novalidate: true },
      h('h3', {}, m ? `Edit ${m.model_id}` : 'Add a model'),
      h('div', { class: 'form-grid form-grid-4' },
        field('Model id', h('input', { name: 'model_id', required: true, value: v.model_id, placeholder: 'gpt-4o-mini',
          'data-testid': 'model-id-input', autocomplete: 'off' })),
        field('Display name', h('input', { name: 'display_name', value: v.display_name || '', 'data-testid': 'model-display-name' })),
        field('Context window', h('input', { name: 'context_window', type: 'number', min: 1, value: v.context_window || '',
          'data-testid': 'model-context-window' })),
        field('Status', h('select', { name: 'status' }, ['active', 'disabled'].map((s) => h('option', { value: s, selected: s === v.status }, s))))),
      h('label', { class: 'inline-check' }, h('input', { type: 'checkbox', name: 'is_default', checked: v.is_default,
        'data-testid': 'model-default' }), 'Default model of this provider'),
      error,
      h('div', { class: 'form-actions' }, save,
        editing ? h('button', { type: 'button', class: 'btn', onclick: done }, 'Cancel') : null));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = formValues(form);
      const body = {
        model_id: f.model_id.trim(), display_name: f.display_name.trim() || null,
        context_window: f.context_window ? Number(f.context_window) : null, is_default: f.is_default, status: f.status,
      };
      if (!body.model_id) {
        error.textContent = 'The model id is required.';
        return;
      }
      save.disabled = true;
      try {
        if (m) await api.updateModel(m.id, body);
        else await api.createModel(provider.id, body);
        toast(editing ? 'Model saved' : `Model ${body.model_id} added`, 'success');
        done();
      } catch (err) {
        error.textContent = err.message;
        save.disabled = false;
      }
    });
    return form;
  }
}
