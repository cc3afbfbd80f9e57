// Small DOM and formatting helpers shared by every page: an element builder, messages for the
// person (errors in plain words from problem+json), money and times in a theater's zone.

import { ApiError } from './api.js';

/**
 * Builds an element: h('a', {href: '#/', class: 'x', onclick: fn}, 'text', child, ...).
 * Attributes starting with "on" become listeners; `null`/`false` children and attributes are
 * skipped; strings become text nodes (never parsed as HTML).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** The problem as the person should read it: title, then detail. */
export function problemText(error) {
  if (error instanceof ApiError) {
    return error.detail && error.detail !== error.title ? `${error.title}: ${error.detail}` : error.title;
  }
  return `Something went wrong: ${error && error.message ? error.message : error}`;
}

/** An inline error box for a failed action. */
export function problemBox(error) {
  return h('div', { class: 'problem', role: 'alert' }, problemText(error));
}

let flashTimer = null;

/** Shows a message at the top of the page (errors stay until dismissed or replaced). */
export function flash(message, kind = 'info') {
  const box = document.getElementById('flash');
  clearTimeout(flashTimer);
  const text = message instanceof Error ? problemText(message) : message;
  replace(box, h('div', { class: `flash ${kind === 'error' || message instanceof Error ? 'problem' : 'info'}` },
    h('span', {}, text),
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: () => replace(box) }, '×')));
  if (kind === 'info') flashTimer = setTimeout(() => replace(box), 6000);
}

/** Runs an async action for a button: disables it meanwhile, shows failures in `where`. */
export async function busy(button, action, where) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (where) replace(where);
  try {
    return await action();
  } catch (error) {
    if (where) replace(where, problemBox(error));
    else flash(error, 'error');
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

const moneyFormats = new Map();

/** `12500, 'INR'` -> "₹125.00" (minor units; currency from the API). */
export function money(minor, currency = 'INR') {
  if (!moneyFormats.has(currency)) {
    let format;
    try {
      format = new Intl.NumberFormat('en-IN', { style: 'currency', currency });
    } catch {
      format = { format: (n) => `${n.toFixed(2)} ${currency}` };
    }
    moneyFormats.set(currency, format);
  }
  const text = moneyFormats.get(currency).format(minor / 100);
  return text.endsWith('.00') ? text.slice(0, -3) : text;
}

function shifted(ms, offsetMinutes) {
  return new Date(ms + (offsetMinutes || 0) * 60000);
}

/** "Thu 26 Nov, 10:00" in the theater's zone (`utc_offset_minutes`). */
export function localDateTime(ms, offsetMinutes) {
  return shifted(ms, offsetMinutes).toLocaleString('en-GB', {
    timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit',
  });
}

/** "10:00" in the theater's zone. */
export function localTime(ms, offsetMinutes) {
  return shifted(ms, offsetMinutes).toLocaleTimeString('en-GB', { timeZone: 'UTC', hour: '2-digit', minute: '2-digit' });
}

/** YYYY-MM-DD of the browser's local date `days` from today. */
export function isoDate(days = 0) {
  const d = new Date();
  d.setDate(d.getDate() + days);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
}

/** "Thu 26 Nov" for a YYYY-MM-DD date. */
export function dayLabel(iso) {
  const [y, m, d] = iso.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString('en-GB', { timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'short' });
}

/** "4.2 ★ (18)" or "No reviews yet". */
export function ratingText(rating, average) {
  if (!rating || !rating.count) return 'No reviews yet';
  return `${average.toFixed(1)} ★ (${rating.count} review${rating.count === 1 ? '' : 's'})`;
}

/** A poster placeholder: the title's initials on a colour derived from the title. */
export function poster(title, size = '') {
  let hash = 0;
  for (const c of title) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  const el = h('div', { class: `poster ${size}`, 'aria-hidden': 'true' },
    title.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join(''));
  el.style.setProperty('--hue', String(hash % 360));
  return el;
}

/** Sets the document title and moves focus to the page heading (for screen readers). */
export function titled(main, text) {
  document.title = `${text} · Marquee`;
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

/** Parameters after `?` in the hash route. */
export function hashParams() {
  const hash = location.hash;
  const i = hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : hash.slice(i + 1));
}

/** A description list from [term, value] pairs. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
