// @ts-check
// Signing in, when the server asks for it (AUTH_MODE admin or full). The login lives in
// HttpOnly cookies the server sets (the page never sees a token); they also authenticate
// the /ws handshake. An expired access token is renewed once through /v1/auth/refresh and
// the request retried. Refresh tokens rotate and a reused one signs the login out, so only
// one refresh is ever in flight.

import { request, setUnauthorizedHandler } from './api.js';
import { h, mount } from './dom.js';

export class Auth extends EventTarget {
  constructor() {
    super();
    this.mode = 'none';
    /** @type {{mode?: string, oauth_providers?: string[], signup_enabled?: boolean} | null} */
    this.config = null;
    /** @type {{email?: string, role?: string} | null} */
    this.me = null;
    /** @type {Promise<boolean> | null} the refresh in flight */
    this.refreshing = null;
    /** @type {Promise<void> | null} the sign-in form on screen */
    this.loginShown = null;
  }

  get enabled() {
    return this.mode !== 'none';
  }

  /** Resolves to true when the dashboard may start: auth is off, or the login is valid. */
  async init() {
    try {
      const config = await request('GET', '/v1/auth/config');
      this.config = config;
      this.mode = config.mode || 'none';
    } catch {
      this.mode = 'none'; // a server without /v1/auth: nothing to sign in to
    }
    if (!this.enabled) return true;
    const signedIn = (await this.whoAmI()) || ((await this.refresh()) && (await this.whoAmI()));
    setUnauthorizedHandler(() => this.recover());
    return Boolean(signedIn);
  }

  async whoAmI() {
    try {
      this.me = await request('GET', '/v1/auth/me', undefined, { retry: false });
      return true;
    } catch (err) {
      if (err.status === 401) return false;
      throw err;
    }
  }

  /** Called on a 401: try one refresh; when that fails the user must sign in again. */
  async recover() {
    const ok = await this.refresh();
    if (!ok) this.signedOut();
    return ok;
  }

  refresh() {
    if (!this.refreshing) {
      this.refreshing = request('POST', '/v1/auth/refresh')
        .then(() => true, () => false)
        .finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  /**
   * @param {string} email
   * @param {string} password
   */
  async login(email, password) {
    await request('POST', '/v1/auth/login', { email, password });
    this.me = await request('GET', '/v1/auth/me');
  }

  /**
   * A new account (full mode, sign-up on), then signed in with it.
   * @param {string} email
   * @param {string} password
   */
  async register(email, password) {
    await request('POST', '/v1/auth/register', { email, password });
    await this.login(email, password);
  }

  async logout() {
    try {
      await request('POST', '/v1/auth/logout');
    } catch {
      // already signed out on the server: fine
    }
    this.signedOut();
  }

  signedOut() {
    this.me = null;
    if (!this.loginShown) this.dispatchEvent(new Event('signed-out'));
  }

  /** The full-page sign-in form; resolves once signed in (one form at a time). */
  showLogin() {
    this.loginShown ||= this.loginForm().finally(() => { this.loginShown = null; });
    return this.loginShown;
  }

  /** @returns {Promise<void>} */
  loginForm() {
    return new Promise((resolve) => {
      /** @type {{oauth_providers?: string[], signup_enabled?: boolean}} */
      const config = this.config || {};
      let registering = false;
      const error = h('div', { class: 'form-error', 'data-testid': 'login-error', role: 'alert' });
      const email = h('input', { name: 'email', type: 'email', autocomplete: 'username', required: true, 'data-testid': 'login-email' });
      const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true,
        'data-testid': 'login-password' });
      const title = h('h1', {}, 'Sign in');
      const submit = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'login-submit' }, 'Sign in');
      // Accounts made by a first OAuth sign-in have no password: the provider is their way in.
      const names = { google: 'Google', github: 'GitHub' };
      const oauth = (config.oauth_providers || []).map((/** @type {string} */ p) => h('a', {
        class: 'btn', href: `/v1/auth/oauth/${encodeURIComponent(p)}`, 'data-testid': `login-oauth-${p}`,
      }, `Sign in with ${names[/** @type {'google' | 'github'} */ (p)] || p}`));
      const toggle = h('button', { type: 'button', class: 'btn btn-link', 'data-testid': 'login-toggle-signup' },
        'Create an account');
      toggle.addEventListener('click', () => {
        registering = !registering;
        title.textContent = registering ? 'Create an account' : 'Sign in';
        submit.textContent = registering ? 'Create account' : 'Sign in';
        toggle.textContent = registering ? 'I have an account' : 'Create an account';
        password.setAttribute('autocomplete', registering ? 'new-password' : 'current-password');
        error.textContent = '';
      });
      const form = h('form', { class: 'card form login-card', 'data-testid': 'login-form', novalidate: true },
        h('div', { class: 'brand login-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Agent Runtime'),
        title,
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Email'), email),
        h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Password'), password),
        error,
        h('div', { class: 'form-actions' }, submit, ...(config.signup_enabled ? [toggle] : [])),
        ...(oauth.length ? [h('div', { class: 'form-actions login-oauth' }, ...oauth)] : []));
      const screen = h('div', { class: 'login-screen', 'data-testid': 'login-screen' }, form);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!email.value.trim() || !password.value) {
          error.textContent = 'Enter your email and password.';
          return;
        }
        submit.disabled = true;
        error.textContent = '';
        try {
          if (registering) await this.register(email.value.trim(), password.value);
          else await this.login(email.value.trim(), password.value);
          screen.remove();
          resolve();
        } catch (err) {
          error.textContent = signInError(err, registering);
          password.value = '';
          password.focus();
        } finally {
          submit.disabled = false;
        }
      });
      document.body.append(screen);
      email.focus();
    });
  }

  /** "you@example.com · Sign out" in the top bar (nothing when auth is off). */
  /** @param {HTMLElement} slot */
  renderUser(slot) {
    if (!this.enabled || !this.me) {
      slot.replaceChildren();
      return;
    }
    const out = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': 'logout' }, 'Sign out');
    out.addEventListener('click', () => this.logout());
    mount(slot, h('span', { class: 'user-email', 'data-testid': 'user-email' }, this.me.email || this.me.role), out);
  }
}

/**
 * What the sign-in form says when the server said no.
 * @param {any} err an ApiError
 * @param {boolean} registering
 */
function signInError(err, registering) {
  if (err.status === 429) {
    return err.retryAfter ? `Too many attempts; try again in ${err.retryAfter} s.` : 'Too many attempts; try again later.';
  }
  if (err.status === 401 && !registering) return 'Wrong email or password.';
  return err.message;
}
