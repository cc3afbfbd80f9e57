// "My bookings": the signed-in person's bookings across every show, newest first, with status.

import { api, session } from '../api.js';
import { h, localDateTime, money, replace, titled } from '../ui.js';
import { statusText } from './ticket.js';

export async function render(main) {
  if (!session()) {
    location.hash = `#/signin?next=${encodeURIComponent('#/bookings')}`;
    return;
  }
  const { bookings } = await api('/v1/me/bookings?limit=50', { auth: true });
  const shows = new Map();
  await Promise.all([...new Set(bookings.map((b) => b.show_id))].map(async (id) => {
    try {
      shows.set(id, await api(`/v1/shows/${id}`));
    } catch {
      // Listed without its show's details.
    }
  }));
  replace(main,
    h('h1', {}, 'My bookings'),
    bookings.length ? h('ul', { class: 'bookings', id: 'my-bookings' }, bookings.map((b) => {
      const show = shows.get(b.show_id);
      return h('li', { class: 'booking', dataset: { booking: b.booking_id } },
        h('a', { href: `#/ticket/${b.booking_id}` },
          h('strong', {}, show ? show.movie.title : `Show ${b.show_id}`),
          h('span', { class: 'meta' }, show ? ` · ${show.theater.name} · ${localDateTime(show.show.starts_at_ms, show.theater.utc_offset_minutes)}` : ''),
          h('br'),
          `Seats ${b.seats.join(', ')} · ${money(b.amount.amount_minor, b.amount.currency)} · `,
          h('span', { class: `status status-${b.status}` }, statusText(b.status))));
    })) : h('p', { class: 'empty' }, 'No bookings yet. ', h('a', { href: '#/' }, 'Find a movie')));
  titled(main, 'My bookings');
}
