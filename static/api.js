// @ts-check
// Fetch helpers for the two APIs the dashboard uses: Everruns /v1 (errors are
// {"error": {"code", "message"}, "status"}) and the root-level Agent Runtime API
// (errors are {"detail": "..."}). Every failure becomes an ApiError with a readable message.

/**
 * A session as the Agent Runtime API and /ws show it (both kinds).
 * @typedef {{session_id: string, session_name?: string | null, kind: string, status: string,
 *   runtime_status?: string | null, agent_id?: string | null, agent_name?: string | null,
 *   project_dir?: string | null, last_error?: string | null, created_at: string, updated_at?: string | null}} ArSession
 */
/**
 * One page of a /v1 list.
 * @template T
 * @typedef {{data: T[], total: number, offset: number, limit: number}} Page
 */
/**
 * @typedef {{id: string, name: string, description?: string | null, system_prompt: string, tags: string[],
 *   default_model_id?: string | null, capability_ids: string[], status: string, updated_at?: string}} Agent
 * @typedef {{id: string, name: string, description: string, status: string,
 *   tools: {name: string, description?: string}[]}} Capability
 * @typedef {{id: string, requires_approval: boolean}} CapabilitySetting one of an agent's capabilities, with its settings
 * @typedef {{id: string, name: string, provider_type: string, base_url?: string | null, api_version?: string | null,
 *   api_key_set: boolean, api_key_hint?: string | null, is_default: boolean, status: string}} Provider
 * @typedef {{id: string, provider_id: string, provider_name: string, model_id: string, display_name?: string | null,
 *   context_window?: number | null, is_default: boolean, status: string}} Model
 * @typedef {{id: string, session_id: string, sequence: number, type?: string, event_type?: string,
 *   data?: Record<string, any>, created_at?: string, timestamp?: string}} RawEvent
 * @typedef {{tool_call_id: string, tool_name: string, arguments?: unknown, expires_at?: string | null,
 *   kind?: string}} ToolCall
 */

export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   * @param {string | null} [code]
   * @param {number | null} [retryAfter] seconds, from a 429's Retry-After
   */
  constructor(status, message, code = null, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/**
 * @param {number} status
 * @param {string} statusText
 * @param {any} body
 */
function errorMessage(status, statusText, body) {
  if (body && typeof body === 'object') {
    if (body.error && body.error.message) return body.error.message;
    if (typeof body.detail === 'string') return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((/** @type {any} */ d) => d.msg || JSON.stringify(d)).join('; ');
  }
  return `${status} ${statusText || 'error'}`.trim();
}

// When a request comes back 401, this is asked (once per request) whether to try again,
// e.g. after refreshing the login (see auth.js). It resolves to true to retry.
/** @type {(() => Promise<boolean>) | null} */
let onUnauthorized = null;
/** @param {() => Promise<boolean>} handler */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {{retry?: boolean}} [options]
 * @returns {Promise<any>} the parsed JSON answer (null when there is none)
 */
export async function request(method, path, body, { retry = true } = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  /** @type {RequestInit} */
  // The page's own Referrer-Policy is no-referrer, under which a browser may send
  // `Origin: null` on a POST; the server refuses cookie writes whose Origin is not its own
  // (docs/api.md §8.8), so same-origin requests say where they come from.
  const init = { method, headers, cache: 'no-store', referrerPolicy: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'Cannot reach the server');
  }
  const text = response.status === 204 ? '' : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.status === 401 && retry && onUnauthorized && !/^\/v1\/auth\/(login|refresh|register|config)/.test(path)) {
    if (await onUnauthorized()) return request(method, path, body, { retry: false });
  }
  if (!response.ok) {
    const wait = Number.parseInt(response.headers.get('Retry-After') || '', 10);
    throw new ApiError(response.status, errorMessage(response.status, response.statusText, data),
      data && data.error ? data.error.code : null, Number.isNaN(wait) ? null : wait);
  }
  return data;
}

const enc = encodeURIComponent;
/** @param {string} path */
const get = (path) => request('GET', path);
/** @param {string} path @param {unknown} [body] */
const post = (path, body = {}) => request('POST', path, body);
/** @param {string} path @param {unknown} body */
const patch = (path, body) => request('PATCH', path, body);
/** @param {string} path @param {unknown} body */
const put = (path, body) => request('PUT', path, body);
/** @param {string} path */
const del = (path) => request('DELETE', path);

/** Rows per page of the lists people page through ("Load more"). */
export const LIST_PAGE = 50;
const ALL_PAGE = 200; // rows per request when a select or a lookup needs every row

/**
 * One page of a /v1 list: `offset`/`limit` added to `path` (which may have a query).
 * @template T
 * @param {string} path
 * @param {number} offset
 * @param {number} [limit]
 * @returns {Promise<Page<T>>}
 */
function page(path, offset, limit = LIST_PAGE) {
  return get(`${path}${path.includes('?') ? '&' : '?'}offset=${offset}&limit=${limit}`);
}

/**
 * Every row of a /v1 list, page after page until `total` (for selects and lookups, which
 * need them all; a list people read is paged with "Load more" instead).
 * @template T
 * @param {string} path
 * @returns {Promise<T[]>}
 */
async function all(path) {
  /** @type {T[]} */
  const rows = [];
  for (;;) {
    /** @type {Page<T>} */
    const p = await page(path, rows.length, ALL_PAGE);
    rows.push(...p.data);
    if (!p.data.length || p.data.length < ALL_PAGE || rows.length >= p.total) return rows;
  }
}

export const api = {
  // Sessions (Agent Runtime shape, both kinds) and their events
  /** The newest page of sessions (the sidebar before /ws says hello). @returns {Promise<ArSession[]>} */
  listSessions: async () => (await get('/sessions')).sessions,
  /** @param {string} id @returns {Promise<ArSession>} */
  getSession: async (id) => (await get(`/sessions/${enc(id)}`)).session,
  /** @param {string} id */
  deleteSession: (id) => del(`/sessions/${enc(id)}`),
  /** @param {string} agentId @param {string} [title] @returns {Promise<{id: string}>} */
  createSession: (agentId, title) => post(`/v1/agents/${enc(agentId)}/sessions`, title ? { title } : {}),
  /** Events after a sequence, oldest first (paged by the `after` cursor).
   * @param {string} id @param {number} [after] @param {number} [limit] @returns {Promise<{data: RawEvent[]}>} */
  events: (id, after = 0, limit = 500) => get(`/v1/sessions/${enc(id)}/events?after=${after}&limit=${limit}`),
  /** @param {string} id @param {string} text */
  sendMessage: (id, text) => post(`/v1/sessions/${enc(id)}/messages`, { content: text }),
  /** @param {string} id @returns {Promise<{cancelled: boolean}>} */
  cancel: (id) => post(`/v1/sessions/${enc(id)}/cancel`),
  // Tool calls that wait for an approval or the client's result
  /** @param {string} id @param {string} [status] @returns {Promise<ToolCall[]>} */
  toolCalls: async (id, status = 'waiting') => (await get(`/v1/sessions/${enc(id)}/tool-calls?status=${status}`)).data,
  /** @param {string} id @param {string} callId */
  approveToolCall: (id, callId) => post(`/v1/sessions/${enc(id)}/tool-calls/${enc(callId)}/approve`),
  /** @param {string} id @param {string} callId @param {string} [reason] */
  denyToolCall: (id, callId, reason) => post(`/v1/sessions/${enc(id)}/tool-calls/${enc(callId)}/deny`, reason ? { reason } : {}),

  // Agents and capabilities
  /** Every agent (the "New session" select). @param {string} [status] @returns {Promise<Agent[]>} */
  listAgents: (status = 'active') => all(`/v1/agents?status=${status}`),
  /** @param {string} status @param {number} offset @returns {Promise<Page<Agent>>} */
  agentsPage: (status, offset) => page(`/v1/agents?status=${status}`, offset),
  /** @param {string} id @returns {Promise<Agent>} */
  getAgent: (id) => get(`/v1/agents/${enc(id)}`),
  /** @param {object} body @returns {Promise<Agent>} */
  createAgent: (body) => post('/v1/agents', body),
  /** @param {string} id @param {object} body @returns {Promise<Agent>} */
  updateAgent: (id, body) => patch(`/v1/agents/${enc(id)}`, body),
  /** @param {string} id */
  archiveAgent: (id) => del(`/v1/agents/${enc(id)}`),
  /** An agent's capabilities in order, with their settings. @param {string} id @returns {Promise<CapabilitySetting[]>} */
  capabilitySettings: async (id) => (await get(`/v1/agents/${enc(id)}/capabilities`)).capabilities,
  /** Replaces the agent's capabilities and their settings. @param {string} id @param {CapabilitySetting[]} settings
   * @returns {Promise<CapabilitySetting[]>} */
  setCapabilitySettings: async (id, settings) => (await put(`/v1/agents/${enc(id)}/capabilities`, { capabilities: settings })).capabilities,
  /** @returns {Promise<Capability[]>} */
  listCapabilities: async () => (await get('/v1/capabilities')).data,

  // LLM providers and models
  /** @param {number} offset @returns {Promise<Page<Provider>>} */
  providersPage: (offset) => page('/v1/llm-providers', offset),
  /** @param {string} id @returns {Promise<Provider>} */
  getProvider: (id) => get(`/v1/llm-providers/${enc(id)}`),
  /** @param {object} body @returns {Promise<Provider>} */
  createProvider: (body) => post('/v1/llm-providers', body),
  /** @param {string} id @param {object} body @returns {Promise<Provider>} */
  updateProvider: (id, body) => patch(`/v1/llm-providers/${enc(id)}`, body),
  /** @param {string} id */
  deleteProvider: (id) => del(`/v1/llm-providers/${enc(id)}`),
  /** Every model, of one provider or of all (selects and labels). @param {string | null} [providerId] @returns {Promise<Model[]>} */
  listModels: (providerId) => all(providerId ? `/v1/llm-providers/${enc(providerId)}/models` : '/v1/llm-models'),
  /** @param {string} providerId @param {number} offset @returns {Promise<Page<Model>>} */
  modelsPage: (providerId, offset) => page(`/v1/llm-providers/${enc(providerId)}/models`, offset),
  /** @param {string} providerId @param {object} body @returns {Promise<Model>} */
  createModel: (providerId, body) => post(`/v1/llm-providers/${enc(providerId)}/models`, body),
  /** @param {string} id @param {object} body @returns {Promise<Model>} */
  updateModel: (id, body) => patch(`/v1/llm-models/${enc(id)}`, body),
  /** @param {string} id */
  deleteModel: (id) => del(`/v1/llm-models/${enc(id)}`),
};
