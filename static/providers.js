// LLM providers and their models: the list (#/providers), a provider's page
// (#/providers/new, #/providers/<id>) with its models. API keys are write-only: the form
// never shows a stored key (only the server's hint, e.g. "sk-...abcd") and is emptied after saving.

import { api } from './api.js';
import { badge, confirmButton, field, formValues, h, mount, toast } from './dom.js';

const TYPES = ['openai', 'anthropic', 'azure_openai', 'ollama', 'custom'];

function keyStatus(p) {
  return p.api_key_set
    ? h('span', { class: 'key-hint', 'data-testid': 'provider-key-hint' }, h('code', {}, p.api_key_hint || 'set'))
    : h('span', { class: 'muted', 'data-testid': 'provider-key-hint' }, 'no key');
}

export class Providers {
  async list(main) {
    const body = h('div', { class: 'card-body' }, h('p', { class: 'muted' }, 'Loading providers…'));
    mount(main, h('section', { class: 'page', 'data-testid': 'providers-page' },
      h('div', { class: 'page-head' }, h('h1', {}, 'LLM providers & models'),
        h('a', { class: 'btn btn-primary', href: '#/providers/new', 'data-testid': 'new-provider' }, 'Add provider')),
      h('div', { class: 'card' }, body)));
    let providers;
    let models;
    try {
      [providers, models] = await Promise.all([api.listProviders(), api.listModels()]);
    } catch (err) {
      mount(body, h('p', { class: 'form-error' }, `Cannot load providers: ${err.message}`));
      return;
    }
    if (!providers.length) {
      mount(body, h('p', { class: 'muted' }, 'No providers yet. ', h('a', { href: '#/providers/new' }, 'Add one'),
        ' so agents have a model to talk to.'));
      return;
    }
    mount(body, h('table', { class: 'table', 'data-testid': 'provider-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Type', 'Base URL', 'API key', 'Models', 'Status', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, providers.map((p) => {
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
      }))));
  }

  async detail(main, id) {
    const page = h('section', { class: 'page', 'data-testid': 'provider-page' },
      h('div', { class: 'page-head' }, h('h1', {}, id ? 'Provider' : 'Add provider'),
        h('a', { class: 'btn', href: '#/providers' }, 'Back to providers')),
      h('p', { class: 'muted' }, 'Loading…'));
    mount(main, page);
    let provider = null;
    if (id) {
      try {
        provider = await api.getProvider(id);
      } catch (err) {
        mount(page, h('h1', {}, 'Provider'), h('p', { class: 'form-error' }, err.message), h('a', { href: '#/providers' }, 'Back to providers'));
        return;
      }
    }
    const head = page.firstChild;
    if (provider) head.firstChild.textContent = provider.name;
    const models = h('div', { class: 'models-slot' });
    mount(page, head, this.providerForm(provider), provider ? models : null);
    if (provider) this.renderModels(models, provider);
  }

  providerForm(p) {
    const editing = Boolean(p);
    const v = p || { name: '', provider_type: 'openai', base_url: '', api_version: '', is_default: false, status: 'active' };
    const error = h('div', { class: 'form-error', 'data-testid': 'form-error', role: 'alert' });
    const keyInput = h('input', { name: 'api_key', type: 'password', autocomplete: 'new-password', 'data-testid': 'provider-api-key',
      placeholder: editing && p.api_key_set ? 'Leave blank to keep the stored key' : 'sk-…', spellcheck: 'false' });
    const clearKey = editing && p.api_key_set
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
        field('API key', keyInput, editing
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
        editing ? confirmButton('Delete provider', 'Delete provider and its models', () => this.remove(p), 'provider-delete') : null));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const f = formValues(form);
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
        const saved = editing ? await api.updateProvider(p.id, body) : await api.createProvider(body);
        keyInput.value = ''; // never keep a key in the page longer than needed
        toast(editing ? 'Provider saved' : `Provider “${saved.name}” added`, 'success');
        if (editing) this.detail(document.getElementById('view'), saved.id);
        else location.hash = `#/providers/${saved.id}`;
      } catch (err) {
        error.textContent = err.message;
      } finally {
        save.disabled = false;
      }
    });
    return form;
  }

  async remove(p) {
    try {
      await api.deleteProvider(p.id);
      toast(`Provider “${p.name}” deleted`, 'info');
      location.hash = '#/providers';
    } catch (err) {
      toast(`Delete failed: ${err.message}`, 'error');
    }
  }

  async renderModels(slot, provider) {
    let models;
    try {
      models = await api.listModels(provider.id);
    } catch (err) {
      mount(slot, h('p', { class: 'form-error' }, `Cannot load models: ${err.message}`));
      return;
    }
    const formSlot = h('div', {});
    const showForm = (model) => mount(formSlot, this.modelForm(provider, model, () => this.renderModels(slot, provider)));
    mount(slot, h('section', { class: 'card', 'data-testid': 'models-section' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Models'),
        h('button', { type: 'button', class: 'btn btn-small', onclick: () => showForm(null) }, 'Add model')),
      models.length
        ? h('table', { class: 'table', 'data-testid': 'model-table' },
          h('thead', {}, h('tr', {}, ['Model id', 'Display name', 'Context window', 'Status', ''].map((t) => h('th', {}, t)))),
          h('tbody', {}, models.map((m) => h('tr', { 'data-testid': 'model-row', 'data-model-id': m.id },
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
                  this.renderModels(slot, provider);
                } catch (err) {
                  toast(`Delete failed: ${err.message}`, 'error');
                }
              }, 'model-delete', 'small'))))))
        : h('p', { class: 'muted' }, 'No models yet. Sessions need a model: add one below.'),
      formSlot));
    showForm(null);
  }

  modelForm(provider, m, done) {
    const editing = Boolean(m);
    const v = m || { model_id: '', display_name: '', context_window: null, is_default: false, status: 'active' };
    const error = h('div', { class: 'form-error', 'data-testid': 'form-error', role: 'alert' });
    const save = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'model-save' }, editing ? 'Save model' : 'Add model');
    const form = h('form', { class: 'form form-inline-card', 'data-testid': 'model-form', novalidate: true },
      h('h3', {}, editing ? `Edit ${m.model_id}` : 'Add a model'),
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
        if (editing) await api.updateModel(m.id, body);
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
