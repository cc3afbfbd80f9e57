// A show: the live seat map, choosing seats (or the best n in a category), holding them with a
// countdown to the hold's expiry, releasing, and paying with the sandbox tokens
// (docs/api.md). A declined card says why and keeps the seats (see holdAgain).

import { api, ApiError, clockSkewMs, randomKey, session } from '../api.js';
import { SeatMap } from '../seatmap.js';
import { busy, flash, h, localDateTime, money, problemBox, problemText, replace, titled } from '../ui.js';

const PARTY_MAX = 10;
const TOKENS = [
  ['tok_success', 'Test card that pays'],
  ['tok_decline', 'Test card that is declined'],
  ['tok_timeout', 'Test card whose bank does not answer'],
];

const holdKey = (showId) => `marquee.hold.${showId}`;
const pickKey = (showId) => `marquee.pick.${showId}`;

export async function render(main, [showId]) {
  const page = await api(`/v1/shows/${showId}`);
  const { show, movie, theater, screen } = page;
  const offset = theater.utc_offset_minutes;
  const currency = show.currency;
  let hold = null; // the active hold of this person, if any
  let selected = JSON.parse(sessionStorage.getItem(pickKey(showId)) || '[]');
  sessionStorage.removeItem(pickKey(showId));
  let timer = null;
  let holding = false; // a hold request is in flight

  const live = h('span', { class: 'live', role: 'status' }, 'Connecting…');
  const available = h('span', { class: 'meta' });
  const selection = h('section', { class: 'panel', id: 'selection', 'aria-live': 'polite' });
  const holdPanel = h('section', { class: 'panel', id: 'hold', 'aria-live': 'polite' });
  const message = h('div', { id: 'show-message', 'aria-live': 'assertive' });
  const best = h('form', { class: 'best' });
  const legend = h('div');

  const map = new SeatMap(showId, {
    onToggle: (id) => {
      if (hold) {
        replace(message, h('p', { class: 'info' }, 'Release your held seats to choose others.'));
        return;
      }
      if (selected.includes(id)) selected = selected.filter((s) => s !== id);
      else if (selected.length >= PARTY_MAX) {
        replace(message, h('p', { class: 'problem' }, `At most ${PARTY_MAX} seats at once.`));
        return;
      } else selected = [...selected, id];
      replace(message);
      map.mark({ selected });
      drawSelection();
    },
    onTaken: (ids) => {
      // Our own hold's update can arrive before the hold's answer: not someone else.
      if (holding) return;
      selected = selected.filter((s) => !ids.includes(s));
      map.mark({ selected });
      drawSelection();
      replace(message, h('p', { class: 'problem', role: 'alert' },
        `${ids.length === 1 ? `Seat ${ids[0]} was` : `Seats ${ids.join(', ')} were`} just taken by someone else.`));
    },
    onStatus: (text, ok) => {
      live.textContent = ok ? '● Live' : text;
      live.classList.toggle('ok', ok);
    },
    onChange: () => {
      if (!map.map) return;
      available.textContent = map.map.cancelled ? 'This show was cancelled.' : `${map.map.available} seats available`;
      if (!legend.firstChild) {
        replace(legend, map.legend());
        drawBest();
      }
    },
  });

  function price(ids) {
    return ids.reduce((sum, id) => sum + (map.seats.get(id) ? map.seats.get(id).seat.price_minor : 0), 0);
  }

  function needSignIn() {
    if (session()) return false;
    sessionStorage.setItem(pickKey(showId), JSON.stringify(selected));
    location.hash = `#/signin?next=${encodeURIComponent(`#/show/${showId}`)}`;
    return true;
  }

  function drawSelection() {
    if (hold) return replace(selection);
    if (!selected.length) {
      return replace(selection, h('p', { class: 'meta' }, 'Choose seats on the map, or let us pick the best ones.'));
    }
    const button = h('button', { type: 'button', id: 'hold-seats' }, `Hold ${selected.length} seat${selected.length === 1 ? '' : 's'}`);
    const status = h('div');
    button.addEventListener('click', () => {
      if (needSignIn()) return;
      busy(button, () => requestHold({ seats: selected }), status);
    });
    replace(selection,
      h('p', {}, h('strong', {}, `${selected.length} seat${selected.length === 1 ? '' : 's'}: `), selected.join(', '),
        ` · ${money(price(selected), currency)}`),
      button, h('button', { type: 'button', class: 'secondary', onclick: () => { selected = []; map.mark({ selected }); drawSelection(); } }, 'Clear'),
      status);
  }

  function drawBest() {
    const quantity = h('select', { id: 'best-quantity', 'aria-label': 'Number of seats' },
      Array.from({ length: PARTY_MAX }, (_, i) => h('option', { value: String(i + 1), selected: i === 1 }, String(i + 1))));
    const category = h('select', { id: 'best-category', 'aria-label': 'Category' },
      map.categories().map(([name, p]) => h('option', { value: name }, `${name} (${money(p, currency)})`)));
    const submit = h('button', { type: 'submit', class: 'secondary' }, 'Best available');
    const status = h('div');
    replace(best, h('span', {}, 'Or pick for me: '), quantity, category, submit, status);
    best.onsubmit = (e) => {
      e.preventDefault();
      if (hold) return;
      if (needSignIn()) return;
      busy(submit, () => requestHold({ quantity: Number(quantity.value), category: category.value }), status);
    };
  }

  function remainingMs() {
    return hold ? hold.expires_at_ms - (Date.now() + clockSkewMs) : 0;
  }

  async function requestHold(body) {
    holding = true;
    try {
      takeHold(await api(`/v1/shows/${showId}/holds`, { method: 'POST', auth: true, body }));
    } finally {
      holding = false;
    }
  }

  function takeHold(newHold) {
    replace(message);
    hold = newHold;
    selected = [];
    sessionStorage.setItem(holdKey(showId), hold.hold_id);
    map.mark({ selected, mine: hold.seats });
    drawSelection();
    drawHold();
  }

  function dropHold(note) {
    hold = null;
    clearInterval(timer);
    sessionStorage.removeItem(holdKey(showId));
    map.mark({ selected, mine: [] });
    replace(holdPanel, note ? h('p', { class: 'info' }, note) : null);
    drawSelection();
  }

  function tick(clock) {
    const left = Math.max(0, remainingMs());
    const s = Math.ceil(left / 1000);
    clock.textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
    clock.classList.toggle('urgent', s <= 60);
    if (left <= 0) dropHold('Your hold expired and the seats were released. Choose seats again.');
  }

  function drawHold(notice) {
    clearInterval(timer);
    if (!hold) return replace(holdPanel);
    const clock = h('span', { class: 'countdown', id: 'countdown', role: 'timer', 'aria-label': 'Time left to pay' });
    const release = h('button', { type: 'button', class: 'secondary', id: 'release' }, 'Release seats');
    const payStatus = h('div', { id: 'pay-status', 'aria-live': 'assertive' }, notice || null);
    const pay = h('button', { type: 'submit', id: 'pay' }, `Pay ${money(hold.amount.amount_minor, hold.amount.currency)}`);
    const form = h('form', { class: 'pay' },
      h('fieldset', {}, h('legend', {}, 'Card (sandbox)'),
        TOKENS.map(([token, label], i) => h('label', { class: 'choice' },
          h('input', { type: 'radio', name: 'token', value: token, checked: i === 0 }), ` ${label}`))),
      pay, release, payStatus);
    release.addEventListener('click', () => busy(release, async () => {
      await api(`/v1/holds/${hold.hold_id}`, { method: 'DELETE', auth: true });
      dropHold('Seats released.');
    }, payStatus));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const token = form.querySelector('input[name=token]:checked').value;
      payWith(token, pay, release, payStatus);
    });
    replace(holdPanel,
      h('h2', {}, 'Your seats are held'),
      h('p', {}, h('strong', { id: 'held-seats' }, hold.seats.join(', ')), ` · ${money(hold.amount.amount_minor, hold.amount.currency)}`),
      h('p', {}, 'Pay within ', clock, ' or the seats go back on sale.'),
      form);
    tick(clock);
    timer = setInterval(() => tick(clock), 1000);
  }

  async function payWith(token, pay, release, status) {
    pay.disabled = true;
    release.disabled = true;
    replace(status, h('p', { class: 'info' }, 'Paying…'));
    const attempt = hold;
    try {
      const booking = await api('/v1/bookings', {
        method: 'POST', auth: true, headers: { 'Idempotency-Key': randomKey('pay') },
        body: { hold_id: attempt.hold_id, payment_token: token },
      });
      sessionStorage.removeItem(holdKey(showId));
      clearInterval(timer);
      hold = null;
      location.hash = `#/ticket/${booking.booking_id}`;
    } catch (error) {
      if (error instanceof ApiError && ['payment-declined', 'payment-unavailable'].includes(error.type)) {
        await holdAgain(attempt, error);
      } else {
        replace(status, problemBox(error));
        // The hold may have ended (expired, or a checkout that failed): read it again.
        await refreshHold();
      }
    } finally {
      pay.disabled = false;
      release.disabled = false;
    }
  }

  // A declined card keeps the hold in the shard (docs/api.md: `hold_kept` in the 402): same
  // seats, same countdown, pay again with another card. When it could not be kept (the payment
  // provider was unreachable, the hold survived too many declines, or a cluster mid-upgrade),
  // the page holds the same seats again at once, for the time the first hold had left; if
  // someone took one in that instant, it says so.
  async function holdAgain(previous, why) {
    const ttl = Math.round(Math.max(1000, Math.min(7200000, previous.expires_at_ms - (Date.now() + clockSkewMs))));
    const reason = why.type === 'payment-declined'
      ? `Payment declined: ${why.detail || why.title}. Nothing was charged.`
      : `${problemText(why)}. Nothing was charged.`;
    if (why.problem && why.problem.hold_kept === true) {
      hold = previous;
      map.mark({ mine: hold.seats });
      drawHold(h('p', { class: 'problem', role: 'alert' }, `${reason} Your seats are still held; try another card.`));
      return;
    }
    holding = true;
    try {
      const again = await api(`/v1/shows/${showId}/holds`, {
        method: 'POST', auth: true, body: { seats: previous.seats, ttl_ms: ttl },
      });
      hold = again;
      sessionStorage.setItem(holdKey(showId), hold.hold_id);
      map.mark({ mine: hold.seats });
      drawHold(h('p', { class: 'problem', role: 'alert' }, `${reason} Your seats are still held; try another card.`));
    } catch (error) {
      dropHold();
      replace(holdPanel, h('p', { class: 'problem', role: 'alert' }, reason),
        h('p', { class: 'problem' }, `Your seats could not be kept: ${problemText(error)}`));
    } finally {
      holding = false;
    }
  }

  async function refreshHold() {
    const id = sessionStorage.getItem(holdKey(showId));
    if (!id || !session()) return;
    try {
      const current = await api(`/v1/holds/${id}`, { auth: true });
      if (current.status === 'active') {
        hold = current;
        map.mark({ mine: hold.seats });
        drawHold();
      } else if (current.status === 'booked' && current.booking_id) {
        location.hash = `#/ticket/${current.booking_id}`;
      } else {
        dropHold(current.status === 'expired' ? 'Your hold expired and the seats were released.' : null);
      }
    } catch (error) {
      if (error.status === 404 || error.status === 401) dropHold();
      else flash(error, 'error');
    }
  }

  const heading = h('h1', {}, movie.title);
  replace(main,
    h('section', { class: 'show-head' },
      heading,
      h('p', { class: 'meta' }, `${theater.name} · ${screen.name} (${screen.format}) · `,
        h('time', { datetime: page.starts_at }, localDateTime(show.starts_at_ms, offset))),
      h('p', {}, live, ' ', available),
      page.bookable ? null : h('p', { class: 'problem' },
        show.status === 'cancelled' ? 'This show was cancelled.' : 'This show cannot be booked now.')),
    legend,
    h('div', { class: 'map-scroll' }, map.grid),
    message,
    best,
    selection,
    holdPanel);
  titled(main, `${movie.title}, ${localDateTime(show.starts_at_ms, offset)}`);

  try {
    map.load(await api(`/v1/shows/${showId}/seats`));
  } catch (error) {
    replace(message, problemBox(error));
  }
  map.mark({ selected });
  drawSelection();
  await refreshHold();
  map.connect();
  return () => {
    map.close();
    clearInterval(timer);
  };
}
