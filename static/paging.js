// @ts-check
// A /v1 list shown a page at a time: rows are appended to a table body, and a footer
// says how many of how many there are, with "Load more" while some are left (offset and
// limit in the request, `total` in the answer).

import { h } from './dom.js';

/**
 * @template T
 * @typedef {import('./api.js').Page<T>} Page
 */

/** @template T */
export class Pager {
  /**
   * @param {{load: (offset: number) => Promise<Page<T>>, row: (item: T) => Element, body: HTMLElement,
   *   scope: import('./scope.js').Scope, testid: string}} options
   *   testid: the footer's (`<testid>`, with `<testid>-count` and `<testid>-button`)
   */
  constructor({ load, row, body, scope, testid }) {
    this.load = load;
    this.row = row;
    this.body = body;
    this.scope = scope;
    this.shown = 0;
    this.total = 0;
    this.paged = false; // "Load more" was used: the footer stays, to keep the count
    this.count = h('span', { class: 'muted small', 'data-testid': `${testid}-count` });
    this.button = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': `${testid}-button` }, 'Load more');
    this.button.addEventListener('click', () => this.more());
    this.footer = h('div', { class: 'list-more', 'data-testid': testid }, this.count, this.button);
  }

  /** @param {Page<T>} page a page fetched by the view itself (usually the first) */
  add(page) {
    this.body.append(...page.data.map(this.row));
    this.shown += page.data.length;
    this.total = page.total;
    this.render(page.data.length === 0);
  }

  async more() {
    this.paged = true;
    this.button.disabled = true;
    this.button.textContent = 'Loading…';
    try {
      const page = await this.load(this.shown);
      if (this.scope.disposed) return;
      this.add(page);
    } catch (err) {
      if (this.scope.disposed) return;
      this.count.textContent = `Cannot load more: ${err.message}`;
      this.button.disabled = false;
      this.button.textContent = 'Try again';
    }
  }

  /** @param {boolean} [ended] the server had no more, whatever `total` said */
  render(ended = false) {
    const left = !ended && this.shown < this.total;
    this.count.textContent = `${this.shown} of ${Math.max(this.total, this.shown)}`;
    this.button.hidden = !left;
    this.button.disabled = false;
    this.button.textContent = 'Load more';
    this.footer.hidden = !left && !this.paged; // everything fitted on the first page: nothing to say
  }
}
