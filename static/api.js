// Fetch helpers for the two APIs the dashboard uses: Everruns /v1 (errors are
// {"error": {"code", "message"}, "status"}) and the root-level Agent Runtime API
// (errors are {"detail": "..."}). Every failure becomes an ApiError with a readable message.

export class ApiError extends Error {
  constructor(status, message, code = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

function errorMessage(status, statusText, body) {
  if (body && typeof body === 'object') {
    if (body.error && body.error.message) return body.error.message;
    if (typeof body.detail === 'string') return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg || JSON.stringify(d)).join('; ');
  }
  return `${status} ${statusText || 'error'}`.trim();
}

// When a request comes back 401, this is asked (once per request) whether to try again,
// e.g. after refreshing the login (see auth.js). It resolves to true to retry.
let onUnauthorized = null;
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

export async function request(method, path, body, { retry = true } = {}) {
  const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
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
    throw new ApiError(response.status, errorMessage(response.status, response.statusText, data),
      data && data.error ? data.error.code : null);
  }
  return data;
}

const enc = encodeURIComponent;
const get = (path) => request('GET', path);
const post = (path, body = {}) => request('POST', path, body);
const patch = (path, body) => request('PATCH', path, body);
const put = (path, body) => request('PUT', path, body);
const del = (path) => request('DELETE', path);

export const api = {
  // Sessions (Agent Runtime shape, both kinds) and their events
  listSessions: async () => (await get('/sessions')).sessions,
  getSession: async (id) => (await get(`/sessions/${enc(id)}`)).session,
  deleteSession: (id) => del(`/sessions/${enc(id)}`),
  createSession: (agentId, title) => post(`/v1/agents/${enc(agentId)}/sessions`, title ? { title } : {}),
  events: (id, after = 0, limit = 500) => get(`/v1/sessions/${enc(id)}/events?after=${after}&limit=${limit}`),
  sendMessage: (id, text) => post(`/v1/sessions/${enc(id)}/messages`, { content: text }),
  cancel: (id) => post(`/v1/sessions/${enc(id)}/cancel`),
  // Tool calls that wait for an approval or the client's result
  toolCalls: async (id, status = 'waiting') => (await get(`/v1/sessions/${enc(id)}/tool-calls?status=${status}`)).data,
  approveToolCall: (id, callId) => post(`/v1/sessions/${enc(id)}/tool-calls/${enc(callId)}/approve`),
  denyToolCall: (id, callId, reason) => post(`/v1/sessions/${enc(id)}/tool-calls/${enc(callId)}/deny`, reason ? { reason } : {}),

  // Agents and capabilities
  listAgents: async (status = 'active') => (await get(`/v1/agents?status=${status}&limit=500`)).data,
  getAgent: (id) => get(`/v1/agents/${enc(id)}`),
  createAgent: (body) => post('/v1/agents', body),
  updateAgent: (id, body) => patch(`/v1/agents/${enc(id)}`, body),
  archiveAgent: (id) => del(`/v1/agents/${enc(id)}`),
  setCapabilities: (id, ids) => put(`/v1/agents/${enc(id)}/capabilities`, { capability_ids: ids }),
  listCapabilities: async () => (await get('/v1/capabilities')).data,

  // LLM providers and models
  listProviders: async () => (await get('/v1/llm-providers?limit=500')).data,
  getProvider: (id) => get(`/v1/llm-providers/${enc(id)}`),
  createProvider: (body) => post('/v1/llm-providers', body),
  updateProvider: (id, body) => patch(`/v1/llm-providers/${enc(id)}`, body),
  deleteProvider: (id) => del(`/v1/llm-providers/${enc(id)}`),
  listModels: async (providerId) => (await get(providerId
    ? `/v1/llm-providers/${enc(providerId)}/models?limit=500` : '/v1/llm-models?limit=500')).data,
  createModel: (providerId, body) => post(`/v1/llm-providers/${enc(providerId)}/models`, body),
  updateModel: (id, body) => patch(`/v1/llm-models/${enc(id)}`, body),
  deleteModel: (id) => del(`/v1/llm-models/${enc(id)}`),
};
