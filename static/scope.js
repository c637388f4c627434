// @ts-check
// What a view starts, ended together when the view goes away: the router gives each view
// a Scope and disposes of it on the next route, which clears the view's intervals and
// timeouts and removes its listeners on long-lived targets (window, the live feed).
// Async work checks `scope.disposed` after each await before it touches the page.

export class Scope {
  constructor() {
    this.controller = new AbortController();
    /** @type {Set<number>} */
    this.intervals = new Set();
    /** @type {Set<number>} */
    this.timeouts = new Set();
  }

  /** Aborted on dispose: pass it to addEventListener (or fetch) to end with the view. */
  get signal() {
    return this.controller.signal;
  }

  get disposed() {
    return this.controller.signal.aborted;
  }

  /**
   * @param {() => void} fn
   * @param {number} ms
   */
  interval(fn, ms) {
    if (this.disposed) return 0;
    const id = window.setInterval(fn, ms);
    this.intervals.add(id);
    return id;
  }

  /**
   * @param {() => void} fn
   * @param {number} ms
   */
  timeout(fn, ms) {
    if (this.disposed) return 0;
    const id = window.setTimeout(() => {
      this.timeouts.delete(id);
      fn();
    }, ms);
    this.timeouts.add(id);
    return id;
  }

  /**
   * addEventListener that ends with the scope.
   * @param {EventTarget} target
   * @param {string} type
   * @param {(event: any) => void} listener
   */
  listen(target, type, listener) {
    if (!this.disposed) target.addEventListener(type, listener, { signal: this.signal });
  }

  dispose() {
    if (this.disposed) return;
    this.controller.abort();
    for (const id of this.intervals) clearInterval(id);
    for (const id of this.timeouts) clearTimeout(id);
    this.intervals.clear();
    this.timeouts.clear();
  }
}
