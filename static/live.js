// @ts-check
// The live feed: one WebSocket to /ws that reconnects with backoff (1, 2, 4, 8, 16, 30 s,
// reset after a connection that stayed up), pings to notice dead connections, and reports
// every server message and every state change as DOM events:
//   'message' (detail: the parsed server message), 'state' (detail: {state, retryIn}).
// After a reconnect the server's first message is a fresh `init` (the newest page of
// sessions); the sessions view uses it to refresh the list and to catch up the open
// session over REST. `send({type: 'list_sessions', ...})` asks for older pages.

export const BACKOFF_MS = [1000, 2000, 4000, 8000, 16000, 30000];
const GOOD_CONNECTION_MS = 5000; // up this long after init: the next failure starts again at 1 s
const PING_EVERY_MS = 20000;
const SILENCE_LIMIT_MS = 45000; // nothing heard (not even a pong) for this long: reconnect
const CLOSE_UNAUTHORIZED = 4401; // the server's close when the credential stopped working (docs/api.md §7)

// `events=all`: also the loop events with no Agent Runtime type (message.delta streams the
// text live; step.completed carries usage). The timeline applies events in sequence order
// and would see the left-out ones as gaps.
/** @param {string} [path] */
export function liveUrl(path = '/ws?events=all') {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

/**
 * A message from /ws (init, sessions, session_*, event, error, ...).
 * @typedef {{type: string, [key: string]: any}} LiveMessage
 * @typedef {'idle' | 'connecting' | 'reconnecting' | 'live' | 'waiting' | 'stopped'} LiveState
 */

export class Live extends EventTarget {
  constructor(url = liveUrl()) {
    super();
    this.url = url;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {LiveState} */
    this.state = 'idle';
    this.attempt = 0; // failures in a row
    this.connections = 0; // successful inits so far (the first one is not a "reconnect")
    /** @type {number | undefined} */
    this.retryTimer = undefined;
    /** @type {number | undefined} */
    this.goodTimer = undefined;
    /** @type {number | undefined} */
    this.pingTimer = undefined;
    this.lastHeard = 0;
    this.retryAt = 0;
    /** @type {{code: number, reason: string} | null} */
    this.lastClose = null;
    this.stopped = true;
    this.handshakeFailed = false; // the last socket closed before its init: maybe the login expired
    /** @type {(() => unknown) | null} optional async hook run before retrying after such a failure */
    this.beforeRetry = null;
    window.addEventListener('online', () => this.reconnectNow());
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      clearInterval(this.pingTimer);
      clearTimeout(this.goodTimer);
      ws.close(1000, 'bye');
    }
    this.setState('stopped');
  }

  /** Skip the remaining wait (e.g. the network came back, or the user clicked "retry"). */
  reconnectNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.retry();
  }

  /** @param {LiveMessage} message */
  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  connect() {
    this.retryTimer = undefined;
    this.setState(this.connections ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let gotInit = false;
    ws.addEventListener('open', () => {
      this.lastHeard = Date.now();
      this.pingTimer = window.setInterval(() => this.heartbeat(ws), PING_EVERY_MS);
    });
    ws.addEventListener('message', (event) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      /** @type {LiveMessage} */
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'pong') return;
      if (message.type === 'init') {
        gotInit = true;
        this.connections += 1;
        this.setState('live');
        clearTimeout(this.goodTimer);
        this.goodTimer = window.setTimeout(() => { this.attempt = 0; }, GOOD_CONNECTION_MS);
      }
      this.dispatchEvent(new CustomEvent('message', { detail: message }));
    });
    ws.addEventListener('close', (event) => {
      if (ws !== this.ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      clearTimeout(this.goodTimer);
      this.lastClose = { code: event.code, reason: event.reason };
      // Closed before its init, or 4401 (the login expired or was signed out while open):
      // beforeRetry (a /v1/auth/me that refreshes the login) runs before the next try.
      this.handshakeFailed = !gotInit || event.code === CLOSE_UNAUTHORIZED;
      if (this.stopped) this.setState('stopped');
      else this.scheduleRetry();
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  /** @param {WebSocket} ws */
  heartbeat(ws) {
    if (ws !== this.ws) return;
    if (Date.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      ws.close(4000, 'no answer to ping'); // close handler schedules the reconnect
      return;
    }
    this.send({ type: 'ping' });
  }

  scheduleRetry() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState('waiting', delay);
    this.retryTimer = window.setTimeout(() => this.retry(), delay);
  }

  async retry() {
    if (this.handshakeFailed && this.beforeRetry) {
      try {
        await this.beforeRetry();
      } catch {
        // the retry itself will tell
      }
    }
    if (!this.stopped && !this.ws) this.connect();
  }

  /**
   * @param {LiveState} state
   * @param {number | null} [retryIn]
   */
  setState(state, retryIn = null) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, retryIn } }));
  }
}
