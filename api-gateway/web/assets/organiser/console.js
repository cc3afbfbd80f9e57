// The organiser console, for theater managers (their own theaters) and admins (everything):
// theaters and their screens with the visual layout editor, scheduling shows with prices per
// category, a show's sales and bookings, cancelling a show (the refunds shown first), movies,
// and users and roles. The server enforces every right (docs/api.md); the console only hides
// what the person may not use.

import { api, refreshUser, session } from '../api.js';
import { busy, dayLabel, h, hashParams, isoDate, localDateTime, localTime, money, problemBox, replace, titled } from '../ui.js';
import { layoutEditor } from './layout-editor.js';

function tabs(user, current) {
  const items = [['theaters', 'Theaters'], ...(user.role === 'admin' ? [['movies', 'Movies'], ['users', 'Users']] : [])];
  return h('nav', { class: 'tabs', 'aria-label': 'Organiser' }, items.map(([key, label]) =>
    h('a', { href: `#/organiser/${key}`, 'aria-current': current === key ? 'page' : null }, label)));
}

async function myTheaters(user) {
  if (user.role === 'admin') {
    const items = [];
    for (let page = 1; page <= 10; page++) {
      const got = await api(`/v1/theaters?per_page=100&page=${page}`);
      items.push(...got.items);
      if (items.length >= got.total || !got.items.length) break;
    }
    return items;
  }
  return Promise.all(user.theaters.map((id) => api(`/v1/theaters/${id}`)));
}

async function theatersView(main, user) {
  const theaters = await myTheaters(user);
  const byCity = new Map();
  for (const t of theaters) byCity.set(t.city, [...(byCity.get(t.city) || []), t]);
  replace(main, h('h1', {}, 'Organiser'), tabs(user, 'theaters'),
    h('p', { class: 'meta' }, user.role === 'admin' ? 'Every theater.' : 'The theaters you manage.'),
    theaters.length ? [...byCity.entries()].sort().map(([city, list]) => [h('h2', {}, city),
      h('ul', { class: 'theaters', id: 'organiser-theaters' }, list.map((t) => h('li', { class: 'theater' },
        h('a', { href: `#/organiser/theater/${t.theater_id}` }, h('strong', {}, t.name)), h('p', { class: 'meta' }, t.address))))])
      : h('p', { class: 'empty' }, 'You do not manage any theater yet. An admin can assign you one.'),
    user.role === 'admin' ? theaterForm() : null);
}

function theaterForm() {
  const f = {
    name: h('input', { id: 't-name', required: true }), city: h('input', { id: 't-city', required: true }),
    address: h('input', { id: 't-address' }), offset: h('input', { id: 't-offset', type: 'number', value: '330' }),
  };
  const status = h('div');
  const submit = h('button', { type: 'submit' }, 'Add theater');
  return h('form', {
    class: 'panel', onsubmit: (e) => {
      e.preventDefault();
      busy(submit, async () => {
        const t = await api('/v1/admin/theaters', {
          method: 'POST', auth: true, body: {
            name: f.name.value, city: f.city.value, address: f.address.value, lat_e6: 0, lon_e6: 0, amenities: [],
            utc_offset_minutes: Number(f.offset.value),
          },
        });
        location.hash = `#/organiser/theater/${t.theater_id}`;
      }, status);
    },
  }, h('h2', {}, 'New theater'),
  h('label', { for: 't-name' }, 'Name'), f.name, h('label', { for: 't-city' }, 'City'), f.city,
  h('label', { for: 't-address' }, 'Address'), f.address,
  h('label', { for: 't-offset' }, 'UTC offset (minutes)'), f.offset, submit, status);
}

/** Milliseconds since the epoch of a local date and time in a theater `offset` minutes from UTC. */
function theaterMs(date, time, offset) {
  const [y, m, d] = date.split('-').map(Number);
  const [hh, mm] = time.split(':').map(Number);
  return Date.UTC(y, m - 1, d, hh, mm) - offset * 60000;
}

async function movieOptions(select, q) {
  const page = await api(`/v1/movies?per_page=100${q ? `&q=${encodeURIComponent(q)}` : ''}`);
  replace(select, page.items.map((m) => h('option', { value: String(m.movie_id) }, m.title)));
}

function scheduleForm(theater, screens, onDone) {
  const status = h('div', { 'aria-live': 'assertive' });
  const movieFilter = h('input', { id: 'show-movie-filter', type: 'search', placeholder: 'Filter movies by title' });
  const movie = h('select', { id: 'show-movie', required: true });
  const screen = h('select', { id: 'show-screen' }, screens.map((s) => h('option', { value: String(s.screen_id) }, `${s.name} (${s.format})`)));
  const date = h('input', { id: 'show-date', type: 'date', value: isoDate(1), required: true });
  // Plain text, not type=time: the same HH:MM in every browser locale.
  const time = h('input', { id: 'show-time', value: '19:00', required: true, pattern: '([01][0-9]|2[0-3]):[0-5][0-9]', placeholder: 'HH:MM', inputmode: 'numeric', size: '5' });
  const prices = h('div', { id: 'show-prices' });
  const submit = h('button', { type: 'submit', id: 'show-submit' }, 'Schedule show');
  function drawPrices() {
    const s = screens.find((x) => String(x.screen_id) === screen.value);
    const cats = s ? [...new Set(s.rows.map((r) => r.category))] : [];
    replace(prices, cats.map((c) => h('label', {}, `Price of ${c} (₹)`,
      h('input', { type: 'number', min: '0', step: '1', value: '250', dataset: { category: c }, 'aria-label': `Price of ${c} in rupees` }))));
  }
  screen.addEventListener('change', drawPrices);
  let filterTimer = null;
  movieFilter.addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => movieOptions(movie, movieFilter.value.trim()).catch((e) => replace(status, problemBox(e))), 200);
  });
  movieOptions(movie, '').catch((e) => replace(status, problemBox(e)));
  drawPrices();
  return h('form', {
    class: 'panel', id: 'schedule', onsubmit: (e) => {
      e.preventDefault();
      const body = {
        movie_id: Number(movie.value), screen_id: Number(screen.value),
        starts_at_ms: theaterMs(date.value, time.value, theater.utc_offset_minutes),
        prices: Object.fromEntries([...prices.querySelectorAll('input')].map((i) => [i.dataset.category, Math.round(Number(i.value) * 100)])),
        currency: 'INR',
      };
      busy(submit, async () => {
        const show = await api('/v1/admin/shows', { method: 'POST', auth: true, body });
        replace(status, h('p', { class: 'info' }, `Scheduled: show ${show.show_id} at ${localDateTime(show.starts_at_ms, theater.utc_offset_minutes)}.`));
        onDone(date.value);
      }, status);
    },
  }, h('h2', {}, 'Schedule a show'),
  h('label', { for: 'show-movie-filter' }, 'Movie'), movieFilter, movie,
  h('label', { for: 'show-screen' }, 'Screen'), screen,
  h('label', { for: 'show-date' }, `Date and time (theater time, UTC${theater.utc_offset_minutes >= 0 ? '+' : ''}${theater.utc_offset_minutes / 60})`), date, time,
  prices, submit, status);
}

function screenEditor(theater, existing, onSaved) {
  const box = h('div');
  const status = h('div', { 'aria-live': 'assertive' });
  const name = h('input', { id: 'screen-name', value: existing ? existing.name : '', required: true });
  const format = h('select', { id: 'screen-format' }, ['2D', '3D', 'IMAX'].map((f) => h('option', { value: f, selected: existing && existing.format === f }, f)));
  const editor = layoutEditor(box, existing && existing.rows);
  const submit = h('button', { type: 'submit', id: 'screen-save' }, existing ? 'Save screen' : 'Create screen');
  return h('form', {
    class: 'panel', id: 'screen-editor', onsubmit: (e) => {
      e.preventDefault();
      const body = { name: name.value.trim(), format: format.value, rows: editor.rows() };
      busy(submit, async () => {
        const saved = existing
          ? await api(`/v1/admin/screens/${existing.screen_id}`, { method: 'PUT', auth: true, body: { ...body, theater_id: theater.theater_id } })
          : await api(`/v1/admin/theaters/${theater.theater_id}/screens`, { method: 'POST', auth: true, body });
        onSaved(saved);
      }, status);
    },
  }, h('h2', {}, existing ? `Edit ${existing.name}` : 'New screen'),
  h('label', { for: 'screen-name' }, 'Name'), name, h('label', { for: 'screen-format' }, 'Format'), format,
  box, submit, status);
}

async function theaterView(main, user, id) {
  const theater = await api(`/v1/theaters/${id}`);
  const date = hashParams().get('date') || isoDate(0);
  const editorBox = h('div');
  const showsBox = h('section', { id: 'theater-shows' });
  async function drawShows(day) {
    const listing = await api(`/v1/theaters/${id}/shows?date=${day}`);
    replace(showsBox, h('h2', {}, `Shows on ${dayLabel(day)}`),
      h('div', { class: 'days' }, [0, 1, 2, 3, 4, 5, 6].map((n) => h('a', { class: 'button small secondary', href: `#/organiser/theater/${id}?date=${isoDate(n)}` }, n ? dayLabel(isoDate(n)) : 'Today'))),
      listing.shows.length ? h('div', { class: 'table-scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Time', 'Movie', 'Screen', 'Status', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, listing.shows.map((s) => h('tr', {},
          h('td', {}, localTime(s.show.starts_at_ms, theater.utc_offset_minutes)), h('td', {}, s.movie_title),
          h('td', {}, s.screen_name), h('td', {}, s.show.status),
          h('td', {}, h('a', { href: `#/organiser/show/${s.show.show_id}` }, 'Sales')))))))
        : h('p', { class: 'empty' }, 'No shows that day.'));
  }
  replace(main, h('h1', {}, theater.name), tabs(user, 'theaters'),
    h('p', { class: 'meta' }, `${theater.city} · ${theater.address} · UTC${theater.utc_offset_minutes >= 0 ? '+' : ''}${theater.utc_offset_minutes / 60}`),
    h('h2', {}, 'Screens'),
    h('ul', { id: 'screens' }, theater.screens.map((s) => h('li', {}, `${s.name} (${s.format}), ${s.rows.reduce((n, r) => n + r.seats, 0)} seats `,
      h('button', { type: 'button', class: 'secondary small', onclick: () => replace(editorBox, screenEditor(theater, s, () => theaterView(main, user, id))) }, 'Edit layout')))),
    h('button', { type: 'button', id: 'new-screen', onclick: () => replace(editorBox, screenEditor(theater, null, () => theaterView(main, user, id))) }, 'New screen'),
    editorBox,
    theater.screens.length ? scheduleForm(theater, theater.screens, (day) => drawShows(day)) : null,
    showsBox);
  titled(main, theater.name);
  await drawShows(date);
}

async function showView(main, user, id) {
  const page = await api(`/v1/shows/${id}`);
  const [sales, { bookings }] = await Promise.all([
    api(`/v1/admin/shows/${id}/sales`, { auth: true }),
    api(`/v1/admin/shows/${id}/bookings`, { auth: true }),
  ]);
  const cur = sales.currency || page.show.currency;
  const status = h('div', { 'aria-live': 'assertive' });
  const cancelBox = h('section', { class: 'panel', id: 'cancel-show' });
  if (page.show.status === 'cancelled') {
    replace(cancelBox, h('p', {}, 'This show is cancelled.'));
  } else {
    const ask = h('button', { type: 'button', class: 'danger', id: 'cancel-show-start' }, 'Cancel this show…');
    ask.addEventListener('click', () => {
      const refund = bookings.reduce((sum, b) => sum + b.amount.amount_minor, 0);
      const yes = h('button', { type: 'button', class: 'danger', id: 'cancel-show-confirm' }, 'Yes, cancel and refund');
      yes.addEventListener('click', () => busy(yes, async () => {
        const done = await api(`/v1/admin/shows/${id}/cancel`, { method: 'POST', auth: true });
        replace(cancelBox, h('p', { class: 'info' }, `Cancelled. ${done.refunded} booking(s) refunded, ${done.released} hold(s) released.`));
      }, status));
      replace(status, h('p', { id: 'cancel-show-quote' }, `Cancelling stops sales and refunds ${bookings.length} booking(s) in full (${money(refund, cur)}).`), yes);
    });
    replace(cancelBox, h('h2', {}, 'Cancel show'), ask, status);
  }
  replace(main, h('h1', {}, `${page.movie.title}`), tabs(user, 'theaters'),
    h('p', { class: 'meta' }, `${page.theater.name} · ${page.screen.name} · ${localDateTime(page.show.starts_at_ms, page.theater.utc_offset_minutes)} · ${page.show.status}`),
    h('div', { id: 'sales' },
      h('span', { class: 'stat' }, h('strong', {}, String(sales.seats_sold)), 'seats sold'),
      h('span', { class: 'stat' }, h('strong', {}, money(sales.revenue_minor, cur)), 'revenue'),
      page.availability ? h('span', { class: 'stat' }, h('strong', {}, `${page.availability.available}/${page.availability.capacity}`), 'seats left') : null),
    h('h2', {}, 'Revenue by category'),
    h('table', {}, h('tbody', {}, Object.entries(sales.revenue_by_category || {}).map(([c, v]) => h('tr', {}, h('td', {}, c), h('td', {}, money(v, cur)))))),
    h('h2', {}, 'Bookings by status'),
    h('p', {}, Object.entries(sales.bookings_by_status || {}).map(([k, v]) => `${k}: ${v}`).join(' · ') || 'None yet.'),
    h('h2', {}, 'Bookings holding seats'),
    bookings.length ? h('div', { class: 'table-scroll' }, h('table', {}, h('tbody', {}, bookings.map((b) =>
      h('tr', {}, h('td', {}, b.booking_id), h('td', {}, b.seats.join(', ')), h('td', {}, money(b.amount.amount_minor, cur)), h('td', {}, b.status))))))
      : h('p', { class: 'empty' }, 'No bookings.'),
    cancelBox,
    h('p', {}, h('a', { href: `#/organiser/theater/${page.theater.theater_id}` }, `Back to ${page.theater.name}`)));
  titled(main, `Sales: ${page.movie.title}`);
}

async function moviesView(main, user) {
  const q = hashParams().get('q') || '';
  const page = await api(`/v1/movies?per_page=50${q ? `&q=${encodeURIComponent(q)}` : ''}`);
  const editBox = h('div');
  const search = h('input', { type: 'search', value: q, 'aria-label': 'Find movies' });
  replace(main, h('h1', {}, 'Movies'), tabs(user, 'movies'),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); location.hash = `#/organiser/movies?q=${encodeURIComponent(search.value)}`; } }, search, h('button', { type: 'submit' }, 'Find')),
    h('button', { type: 'button', onclick: () => replace(editBox, movieForm(null)) }, 'New movie'), editBox,
    h('p', { class: 'meta' }, `${page.total} movies`),
    h('ul', {}, page.items.map((m) => h('li', {}, `${m.title} (${m.language}, ${m.release_date}) `,
      h('button', { type: 'button', class: 'secondary small', onclick: () => replace(editBox, movieForm(m)) }, 'Edit')))));
  titled(main, 'Movies');
}

function movieForm(movie) {
  const v = movie || { title: '', description: '', genres: [], language: '', duration_min: 120, release_date: isoDate(0), cast: [], director: '', certificate: 'U' };
  const fields = [
    ['title', 'Title', v.title], ['genres', 'Genres (comma separated, lowercase)', v.genres.join(', ')], ['language', 'Language', v.language],
    ['duration_min', 'Duration (minutes)', String(v.duration_min)], ['release_date', 'Release date (YYYY-MM-DD)', v.release_date],
    ['cast', 'Cast (comma separated)', v.cast.join(', ')], ['director', 'Director', v.director], ['certificate', 'Certificate', v.certificate],
  ].map(([key, label, value]) => [key, label, h('input', { id: `m-${key}`, value })]);
  const description = h('textarea', { id: 'm-description', rows: '3' }, v.description);
  const status = h('div');
  const submit = h('button', { type: 'submit' }, movie ? 'Save movie' : 'Create movie');
  const get = (k) => fields.find(([key]) => key === k)[2].value.trim();
  const list = (k) => get(k).split(',').map((x) => x.trim()).filter(Boolean);
  return h('form', {
    class: 'panel', onsubmit: (e) => {
      e.preventDefault();
      const body = {
        title: get('title'), description: description.value, genres: list('genres'), language: get('language'),
        duration_min: Number(get('duration_min')), release_date: get('release_date'), cast: list('cast'),
        director: get('director'), certificate: get('certificate'), poster_url: null,
      };
      busy(submit, async () => {
        const saved = movie
          ? await api(`/v1/admin/movies/${movie.movie_id}`, { method: 'PUT', auth: true, body })
          : await api('/v1/admin/movies', { method: 'POST', auth: true, body });
        replace(status, h('p', { class: 'info' }, `Saved “${saved.title}”.`));
      }, status);
    },
  }, h('h2', {}, movie ? `Edit ${movie.title}` : 'New movie'),
  fields.map(([key, label, input]) => [h('label', { for: `m-${key}` }, label), input]),
  h('label', { for: 'm-description' }, 'Description'), description, submit, status);
}

async function usersView(main, user) {
  const n = Number(hashParams().get('page') || '1');
  const page = await api(`/v1/admin/users?per_page=50&page=${n}`, { auth: true });
  replace(main, h('h1', {}, 'Users and roles'), tabs(user, 'users'),
    h('p', { class: 'meta' }, `${page.total} accounts`),
    h('div', { class: 'table-scroll' }, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Email', 'Role', 'Theaters (ids)', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, page.items.map((u) => {
        const role = h('select', { 'aria-label': `Role of ${u.email}` }, ['customer', 'theater_manager', 'admin'].map((r) => h('option', { value: r, selected: u.role === r }, r)));
        const theaters = h('input', { value: u.theaters.join(', '), 'aria-label': `Theaters of ${u.email}` });
        const status = h('span');
        const save = h('button', { type: 'button', class: 'small' }, 'Save');
        save.addEventListener('click', () => busy(save, async () => {
          const ids = theaters.value.split(/[\s,]+/).filter(Boolean).map(Number);
          await api(`/v1/admin/users/${u.user_id}/role`, { method: 'PUT', auth: true, body: { role: role.value, theaters: role.value === 'theater_manager' ? ids : [] } });
          replace(status, ' saved');
        }, status));
        return h('tr', {}, h('td', {}, u.name), h('td', {}, u.email), h('td', {}, role), h('td', {}, theaters), h('td', {}, save, status));
      })))),
    h('p', {}, n > 1 ? h('a', { href: `#/organiser/users?page=${n - 1}` }, '← Previous') : null, ' ',
      n * 50 < page.total ? h('a', { href: `#/organiser/users?page=${n + 1}` }, 'Next →') : null));
  titled(main, 'Users');
}

export async function render(main, [rest]) {
  if (!session()) {
    replace(main, h('h1', {}, 'Organiser console'),
      h('p', {}, 'Sign in with a theater manager or admin account. ', h('a', { href: `#/signin?next=${encodeURIComponent(location.hash)}` }, 'Sign in')));
    return;
  }
  const user = await refreshUser();
  if (user.role !== 'admin' && user.role !== 'theater_manager') {
    replace(main, h('h1', {}, 'Organiser console'),
      h('p', { class: 'problem', id: 'not-staff' }, 'The organiser console is for theater managers and admins. Your account is a customer account.'),
      h('p', {}, h('a', { href: '#/' }, 'Back to movies')));
    titled(main, 'Organiser');
    return;
  }
  const [view, id] = (rest || 'theaters').split('?')[0].split('/');
  try {
    if (view === 'theater' && id) await theaterView(main, user, id);
    else if (view === 'show' && id) await showView(main, user, id);
    else if (view === 'movies' && user.role === 'admin') await moviesView(main, user);
    else if (view === 'users' && user.role === 'admin') await usersView(main, user);
    else await theatersView(main, user);
  } catch (error) {
    replace(main, h('h1', {}, 'Organiser console'), tabs(user, view), problemBox(error));
  }
  if (!document.title.includes('Organiser')) document.title = `Organiser · ${document.title}`;
}
