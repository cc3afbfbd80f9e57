// Home: pick a city (remembered), see what is showing there, search with typo tolerance and
// autocomplete (/v1/search, /v1/search/suggest), filter by genre and language.

import { api } from '../api.js';
import { h, hashParams, poster, problemBox, replace, titled } from '../ui.js';

const CITY_KEY = 'marquee.city';

/** The remembered city, if any. */
export function currentCity() {
  return localStorage.getItem(CITY_KEY) || '';
}

const ENTITIES = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'", '&#x27;': "'" };

/** Nodes for a highlight ("<em>" around matches, the rest HTML-escaped by the server). */
function highlighted(text) {
  const out = [];
  let inside = false;
  for (const part of text.split(/(<em>|<\/em>)/)) {
    if (part === '<em>') inside = true;
    else if (part === '</em>') inside = false;
    else if (part) {
      const plain = part.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (m) => ENTITIES[m]);
      out.push(inside ? h('mark', {}, plain) : plain);
    }
  }
  return out;
}

function card(movie) {
  const average = movie.rating_count ? movie.rating : null;
  const title = movie.highlights && movie.highlights.title ? highlighted(movie.highlights.title) : movie.title;
  return h('li', { class: 'card' },
    h('a', { href: `#/movie/${movie.movie_id}`, class: 'card-link' },
      poster(movie.title),
      h('div', { class: 'card-body' },
        h('h3', {}, title),
        h('p', { class: 'meta' }, [movie.genres.join(', '), movie.language].filter(Boolean).join(' · ')),
        h('p', { class: 'meta' }, average ? `${average.toFixed(1)} ★ · ${movie.rating_count} reviews` : 'No reviews yet',
          movie.certificate ? ` · ${movie.certificate}` : ''))));
}

function options(select, label, counts, chosen) {
  replace(select, h('option', { value: '' }, label),
    Object.entries(counts || {}).sort().map(([value, n]) =>
      h('option', { value, selected: value === chosen }, `${value} (${n})`)));
  if (chosen && !Object.prototype.hasOwnProperty.call(counts || {}, chosen)) {
    select.append(h('option', { value: chosen, selected: true }, chosen));
  }
}

export async function render(main) {
  const params = hashParams();
  const cities = await api('/v1/cities');
  let city = currentCity();
  if (!cities.some((c) => c.city === city)) city = cities.length ? cities[0].city : '';
  const state = { q: params.get('q') || '', genre: params.get('genre') || '', language: params.get('language') || '' };

  const citySelect = h('select', { id: 'city', name: 'city' },
    cities.map((c) => h('option', { value: c.city, selected: c.city === city }, c.city)));
  const search = h('input', {
    id: 'search', type: 'search', name: 'q', value: state.q, placeholder: 'Movie, actor or director',
    autocomplete: 'off', role: 'combobox', 'aria-expanded': 'false', 'aria-controls': 'suggestions',
    'aria-autocomplete': 'list',
  });
  const suggestions = h('ul', { id: 'suggestions', role: 'listbox', class: 'suggestions', hidden: true, 'aria-label': 'Suggestions' });
  const genre = h('select', { id: 'genre', name: 'genre', 'aria-label': 'Genre' });
  const language = h('select', { id: 'language', name: 'language', 'aria-label': 'Language' });
  const results = h('section', { id: 'results', 'aria-live': 'polite' });
  const heading = h('h1', {}, city ? `Now showing in ${city}` : 'Now showing');

  replace(main,
    heading,
    h('form', {
      class: 'filters', role: 'search', onsubmit: (e) => {
        e.preventDefault();
        hideSuggestions();
        load();
      },
    },
    h('label', { for: 'city' }, 'City'), citySelect,
    h('div', { class: 'searchbox' },
      h('label', { for: 'search', class: 'sr-only' }, 'Search movies'), search, suggestions),
    h('button', { type: 'submit' }, 'Search'),
    genre, language),
    results);
  titled(main, heading.textContent);

  let loading = 0;
  async function load() {
    const mine = ++loading;
    state.q = search.value.trim();
    state.genre = genre.value;
    state.language = language.value;
    const query = new URLSearchParams({ per_page: '24' });
    if (city) query.set('city', city);
    for (const key of ['q', 'genre', 'language']) if (state[key]) query.set(key, state[key]);
    if (!state.q) query.set('sort', 'next_show');
    replace(results, h('p', { class: 'loading' }, 'Searching…'));
    try {
      const page = await api(`/v1/search?${query}`);
      if (mine !== loading) return;
      options(genre, 'All genres', page.facets.genres, state.genre);
      options(language, 'All languages', page.facets.languages, state.language);
      replace(results,
        h('p', { class: 'meta' }, state.q ? `${page.total} result${page.total === 1 ? '' : 's'} for “${state.q}”` : `${page.total} movies`),
        page.items.length
          ? h('ul', { class: 'cards' }, page.items.map(card))
          : h('p', { class: 'empty' }, state.q ? 'No movie matches that search. Try fewer words.' : 'Nothing is showing here yet.'));
    } catch (error) {
      if (mine !== loading) return;
      if (error.status !== 503) return replace(results, problemBox(error));
      // Search is down: the plain listing (substring match, no typo tolerance) still works.
      try {
        const plain = new URLSearchParams(query);
        plain.delete('sort');
        const page = await api(`/v1/movies?${plain}`);
        if (mine !== loading) return;
        const items = page.items.map((m) => ({
          movie_id: m.movie_id, title: m.title, genres: m.genres, language: m.language,
          rating: m.rating_average || 0, rating_count: m.rating.count, certificate: m.certificate,
        }));
        replace(results, problemBox(error), h('p', { class: 'meta' }, `${page.total} movies (plain listing)`),
          h('ul', { class: 'cards' }, items.map(card)));
      } catch (again) {
        if (mine === loading) replace(results, problemBox(again));
      }
    }
  }

  citySelect.addEventListener('change', () => {
    city = citySelect.value;
    localStorage.setItem(CITY_KEY, city);
    heading.textContent = `Now showing in ${city}`;
    load();
  });
  genre.addEventListener('change', load);
  language.addEventListener('change', load);

  // Autocomplete: suggestions as the person types; arrows move, Enter picks, Escape closes.
  let suggestTimer = null;
  let active = -1;
  function hideSuggestions() {
    suggestions.hidden = true;
    search.setAttribute('aria-expanded', 'false');
    search.removeAttribute('aria-activedescendant');
    active = -1;
  }
  function mark(index) {
    const items = [...suggestions.children];
    active = Math.max(-1, Math.min(index, items.length - 1));
    items.forEach((li, i) => li.setAttribute('aria-selected', String(i === active)));
    if (active >= 0) search.setAttribute('aria-activedescendant', items[active].id);
  }
  search.addEventListener('input', () => {
    clearTimeout(suggestTimer);
    const q = search.value.trim();
    if (!q) return hideSuggestions();
    suggestTimer = setTimeout(async () => {
      try {
        const found = await api(`/v1/search/suggest?${new URLSearchParams({ q, limit: '6' })}`);
        if (search.value.trim() !== q) return;
        replace(suggestions, found.map((s, i) => h('li', {
          id: `suggestion-${i}`, role: 'option', 'aria-selected': 'false',
          onmousedown: (e) => {
            e.preventDefault();
            location.hash = `#/movie/${s.movie_id}`;
          },
        }, s.title)));
        suggestions.hidden = found.length === 0;
        search.setAttribute('aria-expanded', String(found.length > 0));
        active = -1;
        suggestions.dataset.ids = found.map((s) => s.movie_id).join(',');
      } catch {
        hideSuggestions(); // Suggestions are a convenience; the search itself reports errors.
      }
    }, 150);
  });
  search.addEventListener('keydown', (e) => {
    if (suggestions.hidden) return;
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      mark(active + 1);
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      mark(active - 1);
    } else if (e.key === 'Escape') {
      hideSuggestions();
    } else if (e.key === 'Enter' && active >= 0) {
      e.preventDefault();
      location.hash = `#/movie/${suggestions.dataset.ids.split(',')[active]}`;
    }
  });
  search.addEventListener('blur', () => setTimeout(hideSuggestions, 100));

  await load();
  return () => clearTimeout(suggestTimer);
}
