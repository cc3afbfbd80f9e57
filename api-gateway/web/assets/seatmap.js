// The seat map: rows with aisles and gaps, a legend of categories with prices, seat states
// (available, held, sold, yours, selected), live updates over /v1/shows/{id}/live, and
// keyboard use. Each seat is a button labelled like "Row F seat 7, prime, ₹300"; the grid has
// one tab stop and arrow keys move within it (Home/End: row ends; Space or Enter: select).

import { h, money, replace } from './ui.js';

const STATUS_WORDS = { available: 'available', held: 'taken', sold: 'sold', mine: 'held by you' };

export class SeatMap {
  /**
   * `onToggle(seatId)` is called when a person selects or unselects a seat; `onTaken(seatIds)`
   * when seats of the selection were taken by someone else; `onStatus(text, ok)` reports the
   * live connection.
   */
  constructor(showId, { onToggle, onTaken, onStatus, onChange }) {
    this.showId = showId;
    this.onToggle = onToggle;
    this.onTaken = onTaken;
    this.onStatus = onStatus;
    this.onChange = onChange || (() => {});
    this.map = null;
    this.seats = new Map(); // seat_id -> {seat, row, button}
    this.selected = new Set();
    this.mine = new Set();
    this.focusId = null;
    this.grid = h('div', { class: 'seatmap', role: 'group', 'aria-label': 'Seats' });
    this.grid.addEventListener('keydown', (e) => this.key(e));
    this.closed = false;
    this.socket = null;
    this.retry = 0;
    this.retryTimer = null;
  }

  /** Draws the whole map from a seat map message (snapshot or GET /seats). */
  load(map) {
    this.map = map;
    const hadFocus = this.grid.contains(document.activeElement);
    this.seats.clear();
    const rows = map.rows.map((row) => h('div', { class: 'row', role: 'presentation' },
      h('span', { class: 'row-label', 'aria-hidden': 'true' }, row.label),
      h('div', { class: 'row-seats', role: 'presentation' }, row.seats.map((seat) => {
        const button = h('button', {
          type: 'button', class: `seat cat-${this.categoryIndex(seat.category)}`, tabindex: '-1',
          dataset: { seat: seat.seat_id },
          onclick: () => this.toggle(seat.seat_id),
          onfocus: () => this.rove(seat.seat_id),
        }, String(seat.number));
        this.seats.set(seat.seat_id, { seat, row, button });
        const cells = [button];
        if (seat.aisle_after) cells.push(h('span', { class: 'aisle', 'aria-hidden': 'true' }));
        return cells;
      })),
      h('span', { class: 'row-label', 'aria-hidden': 'true' }, row.label)));
    replace(this.grid, h('div', { class: 'screen', 'aria-hidden': 'true' }, 'Screen this way'), rows);
    for (const id of this.seats.keys()) this.paint(id);
    const first = [...this.seats.values()].find((s) => s.seat.status === 'available') || this.seats.values().next().value;
    if (!this.focusId || !this.seats.has(this.focusId)) this.focusId = first && first.seat.seat_id;
    if (this.focusId) {
      const { button } = this.seats.get(this.focusId);
      button.tabIndex = 0;
      if (hadFocus) button.focus();
    }
    this.onChange();
  }

  /** Categories in layout order, with their prices (for the legend and seat colours). */
  categories() {
    const seen = new Map();
    for (const row of (this.map ? this.map.rows : [])) {
      for (const seat of row.seats) if (!seen.has(seat.category)) seen.set(seat.category, seat.price_minor);
    }
    return [...seen.entries()];
  }

  categoryIndex(category) {
    if (!this.categoryOrder) this.categoryOrder = [];
    let i = this.categoryOrder.indexOf(category);
    if (i < 0) i = this.categoryOrder.push(category) - 1;
    return i % 6;
  }

  legend() {
    return h('ul', { class: 'legend', 'aria-label': 'Legend' },
      this.categories().map(([name, price]) => h('li', {},
        h('span', { class: `swatch seat cat-${this.categoryIndex(name)}`, 'aria-hidden': 'true' }), `${name} ${money(price, this.map.currency)}`)),
      h('li', {}, h('span', { class: 'swatch seat selected', 'aria-hidden': 'true' }), 'your selection'),
      h('li', {}, h('span', { class: 'swatch seat mine', 'aria-hidden': 'true' }), 'held by you'),
      h('li', {}, h('span', { class: 'swatch seat held', 'aria-hidden': 'true' }), 'held'),
      h('li', {}, h('span', { class: 'swatch seat sold', 'aria-hidden': 'true' }), 'sold'));
  }

  /** The state a person sees for a seat. */
  state(id) {
    const { seat } = this.seats.get(id);
    if (this.mine.has(id)) return 'mine';
    return seat.status;
  }

  paint(id) {
    const entry = this.seats.get(id);
    if (!entry) return;
    const { seat, row, button } = entry;
    const state = this.state(id);
    const selected = this.selected.has(id);
    button.classList.toggle('available', state === 'available');
    button.classList.toggle('held', state === 'held');
    button.classList.toggle('sold', state === 'sold');
    button.classList.toggle('mine', state === 'mine');
    button.classList.toggle('selected', selected);
    button.setAttribute('aria-pressed', String(selected));
    button.setAttribute('aria-disabled', String(state !== 'available'));
    const label = `Row ${row.label} seat ${seat.number}, ${seat.category}, ${money(seat.price_minor, this.map.currency)}`;
    const suffix = selected ? ', selected' : state === 'available' ? '' : `, ${STATUS_WORDS[state]}`;
    button.setAttribute('aria-label', label + suffix);
    button.title = label + suffix;
    button.dataset.state = selected ? 'selected' : state;
  }

  toggle(id) {
    const entry = this.seats.get(id);
    if (!entry) return;
    if (!this.selected.has(id) && this.state(id) !== 'available') return;
    this.onToggle(id);
  }

  /** Sets which seats are selected and which are held by this person. */
  mark({ selected, mine }) {
    const touched = new Set([...this.selected, ...this.mine]);
    if (selected) this.selected = new Set(selected);
    if (mine) this.mine = new Set(mine);
    for (const id of [...touched, ...this.selected, ...this.mine]) this.paint(id);
  }

  rove(id) {
    if (this.focusId && this.seats.has(this.focusId)) this.seats.get(this.focusId).button.tabIndex = -1;
    this.focusId = id;
    this.seats.get(id).button.tabIndex = 0;
  }

  key(event) {
    const id = event.target.dataset && event.target.dataset.seat;
    if (!id || !this.seats.has(id)) return;
    const rows = this.map.rows;
    const { row } = this.seats.get(id);
    const r = rows.indexOf(row);
    const i = row.seats.findIndex((s) => s.seat_id === id);
    let target = null;
    const nearest = (other) => {
      // Same position from the row's centre, so rows of different lengths line up as drawn.
      const offset = i - (row.seats.length - 1) / 2;
      const j = Math.round(offset + (other.seats.length - 1) / 2);
      return other.seats[Math.max(0, Math.min(other.seats.length - 1, j))];
    };
    switch (event.key) {
      case 'ArrowRight': target = row.seats[i + 1]; break;
      case 'ArrowLeft': target = row.seats[i - 1]; break;
      case 'ArrowDown': target = rows[r + 1] && nearest(rows[r + 1]); break;
      case 'ArrowUp': target = rows[r - 1] && nearest(rows[r - 1]); break;
      case 'Home': target = row.seats[0]; break;
      case 'End': target = row.seats[row.seats.length - 1]; break;
      default: return;
    }
    event.preventDefault();
    if (target) {
      this.rove(target.seat_id);
      this.seats.get(target.seat_id).button.focus();
    }
  }

  /** Applies a live delta; returns false if it does not follow the map's version. */
  apply(delta) {
    if (!this.map || delta.from_version !== this.map.version) return false;
    this.map.version = delta.to_version;
    this.map.available = delta.available;
    this.map.cancelled = delta.cancelled;
    const taken = [];
    for (const change of delta.changes) {
      const entry = this.seats.get(change.seat_id);
      if (!entry) continue;
      entry.seat.status = change.status;
      if (change.status !== 'available' && this.selected.has(change.seat_id) && !this.mine.has(change.seat_id)) {
        taken.push(change.seat_id);
      }
      this.paint(change.seat_id);
    }
    if (taken.length) this.onTaken(taken);
    this.onChange();
    return true;
  }

  /** Follows the show live; reconnects (with a fresh snapshot) whenever the stream breaks. */
  connect() {
    if (this.closed) return;
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const socket = new WebSocket(`${scheme}://${location.host}/v1/shows/${this.showId}/live`);
    this.socket = socket;
    socket.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'snapshot') {
        this.retry = 0;
        this.onStatus('Live', true);
        this.load(message.seat_map);
      } else if (message.type === 'delta' && !this.apply(message)) {
        // A gap (should not happen: deltas chain); start over from a snapshot.
        socket.close();
      }
    });
    socket.addEventListener('close', () => {
      if (this.socket !== socket || this.closed) return;
      this.onStatus('Reconnecting…', false);
      const wait = Math.min(10000, 500 * 2 ** this.retry++);
      this.retryTimer = setTimeout(() => this.connect(), wait);
    });
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close();
  }
}
