// A movie: details, showtimes by theater for a chosen local date (each theater's own time
// zone, as the API gives it), and reviews with the average; signed-in people write or edit
// their review here.

import { api, session } from '../api.js';
import { busy, dayLabel, facts, h, hashParams, isoDate, localTime, poster, problemBox, ratingText, replace, titled } from '../ui.js';
import { currentCity } from './home.js';

function stars(n) {
  return `${'★'.repeat(n)}${'☆'.repeat(5 - n)}`;
}

async function showtimes(box, movieId, city, date) {
  replace(box, h('p', { class: 'loading' }, 'Loading showtimes…'));
  try {
    const theaters = await api(`/v1/movies/${movieId}/shows?${new URLSearchParams({ city, date })}`);
    if (!theaters.length) {
      replace(box, h('p', { class: 'empty' }, `No shows in ${city} on ${dayLabel(date)}. Try another day.`));
      return;
    }
    replace(box, h('ul', { class: 'theaters' }, theaters.map(({ theater, shows }) =>
      h('li', { class: 'theater' },
        h('h3', {}, theater.name),
        h('p', { class: 'meta' }, theater.address),
        h('ul', { class: 'times' }, shows.map((s) => h('li', {},
          h('a', {
            class: 'time', href: `#/show/${s.show.show_id}`,
            'aria-label': `${localTime(s.show.starts_at_ms, theater.utc_offset_minutes)} at ${theater.name}, ${s.screen_name}, ${s.format}`,
          }, localTime(s.show.starts_at_ms, theater.utc_offset_minutes), h('small', {}, `${s.screen_name} · ${s.format}`)))))))));
  } catch (error) {
    replace(box, problemBox(error));
  }
}

function reviewForm(movieId, mine, onSaved) {
  const who = session();
  if (!who) {
    return h('p', {}, h('a', { href: `#/signin?next=${encodeURIComponent(`#/movie/${movieId}`)}` }, 'Sign in'), ' to write a review.');
  }
  const status = h('div', { 'aria-live': 'polite' });
  const text = h('textarea', { id: 'review-text', name: 'text', rows: '3', maxlength: '4000' }, mine ? mine.text : '');
  const starsField = h('fieldset', { class: 'stars' }, h('legend', {}, 'Your rating'),
    [1, 2, 3, 4, 5].map((n) => h('label', {},
      h('input', { type: 'radio', name: 'stars', value: String(n), checked: mine ? mine.stars === n : n === 4 }), ` ${n} ★`)));
  const submit = h('button', { type: 'submit' }, mine ? 'Update review' : 'Post review');
  return h('form', {
    class: 'review-form', onsubmit: (e) => {
      e.preventDefault();
      const chosen = starsField.querySelector('input:checked');
      busy(submit, async () => {
        await api(`/v1/movies/${movieId}/reviews`, {
          method: 'POST', auth: true, body: { stars: Number(chosen.value), text: text.value },
        });
        onSaved();
      }, status);
    },
  }, h('h3', {}, mine ? 'Edit your review' : 'Write a review'), starsField,
  h('label', { for: 'review-text' }, 'Review'), text, submit, status);
}

async function reviews(box, movieId) {
  try {
    const page = await api(`/v1/movies/${movieId}/reviews?per_page=20`);
    const who = session();
    const mine = who && page.items.find((r) => r.user_id === who.user.user_id);
    replace(box,
      h('h2', {}, 'Reviews'),
      h('p', { class: 'rating' }, ratingText(page.rating, page.rating_average)),
      reviewForm(movieId, mine, () => reviews(box, movieId)),
      page.items.length ? h('ul', { class: 'reviews' }, page.items.map((r) => h('li', { class: 'review' },
        h('p', {}, h('span', { class: 'stars-shown', 'aria-label': `${r.stars} of 5 stars` }, stars(r.stars)), ' ', h('strong', {}, r.author)),
        r.text ? h('p', {}, r.text) : null))) : null);
  } catch (error) {
    replace(box, h('h2', {}, 'Reviews'), problemBox(error));
  }
}

export async function render(main, [id]) {
  const movie = await api(`/v1/movies/${id}`);
  const params = hashParams();
  const city = currentCity() || (await api('/v1/cities')).map((c) => c.city)[0] || '';
  let date = params.get('date') || isoDate(0);
  const times = h('section', { id: 'showtimes', 'aria-live': 'polite' });
  const days = h('div', { class: 'days', role: 'group', 'aria-label': 'Date' });
  function drawDays() {
    replace(days, [0, 1, 2, 3, 4, 5, 6].map((n) => {
      const d = isoDate(n);
      return h('button', {
        type: 'button', class: d === date ? 'day chosen' : 'day', 'aria-pressed': String(d === date),
        onclick: () => {
          date = d;
          history.replaceState(null, '', `#/movie/${id}?date=${d}`);
          drawDays();
          showtimes(times, id, city, date);
        },
      }, n === 0 ? 'Today' : dayLabel(d));
    }));
  }
  const reviewBox = h('section', { id: 'reviews' });
  replace(main,
    h('article', { class: 'movie' },
      poster(movie.title, 'large'),
      h('div', {},
        h('h1', {}, movie.title),
        h('p', { class: 'meta' }, [movie.genres.join(', '), movie.language, `${movie.duration_min} min`, movie.certificate].filter(Boolean).join(' · ')),
        h('p', { class: 'rating' }, ratingText(movie.rating, movie.rating_average)),
        h('p', {}, movie.description),
        facts([['Director', movie.director], ['Cast', movie.cast.join(', ')], ['Released', movie.release_date]]))),
    h('section', {}, h('h2', {}, `Showtimes in ${city}`), days, times),
    reviewBox);
  titled(main, movie.title);
  drawDays();
  await Promise.all([showtimes(times, id, city, date), reviews(reviewBox, id)]);
}
