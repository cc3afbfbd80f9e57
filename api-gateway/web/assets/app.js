// The site's shell: the account links in the header and a router over the part of the URL
// after "#", so the gateway serves one page and every view is a link (docs/web.md). Pages are
// modules loaded when first visited: the consoles cost a customer nothing.

import { onSession, session, signOut } from './api.js';
import { flash, h, problemBox, replace } from './ui.js';

const routes = [
  [/^\/?$/, () => import('./pages/home.js')],
  [/^\/movie\/(\d+)$/, () => import('./pages/movie.js')],
  [/^\/show\/(\d+)$/, () => import('./pages/show.js')],
  [/^\/ticket\/([\w-]+)$/, () => import('./pages/ticket.js')],
  [/^\/bookings$/, () => import('./pages/bookings.js')],
  [/^\/(signin|signup)$/, () => import('./pages/account.js')],
  [/^\/organiser(?:\/(.*))?$/, () => import('./organiser/console.js')],
  [/^\/cluster$/, () => import('./cluster.js')],
];

let cleanup = null;
let generation = 0;

function path() {
  const hash = location.hash.replace(/^#/, '');
  const q = hash.indexOf('?');
  return q < 0 ? hash : hash.slice(0, q);
}

async function route() {
  const mine = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // A page's cleanup failing must not block the next page.
    }
    cleanup = null;
  }
  const main = document.getElementById('main');
  const current = path();
  const match = routes.map(([re, load]) => [current.match(re), load]).find(([m]) => m);
  if (!match) {
    replace(main, h('h1', {}, 'Page not found'), h('p', {}, h('a', { href: '#/' }, 'Back to movies')));
    return;
  }
  const [groups, load] = match;
  try {
    const page = await load();
    if (mine !== generation) return;
    replace(main);
    const result = await page.render(main, groups.slice(1));
    if (mine !== generation) {
      if (typeof result === 'function') result();
      return;
    }
    cleanup = typeof result === 'function' ? result : null;
  } catch (error) {
    if (mine === generation) replace(main, h('h1', {}, 'This page could not be shown'), problemBox(error));
  }
}

function renderNav(current = session()) {
  const nav = document.getElementById('nav');
  const user = current && current.user;
  const staff = user && (user.role === 'admin' || user.role === 'theater_manager');
  replace(nav,
    user ? [
      h('a', { href: '#/bookings' }, 'My bookings'),
      staff ? h('a', { href: '#/organiser' }, 'Organiser') : null,
      user.role === 'admin' ? h('a', { href: '#/cluster' }, 'Cluster') : null,
      h('span', { class: 'who', title: user.email }, user.name),
      h('button', {
        type: 'button', class: 'link', onclick: async () => {
          await signOut();
          flash('Signed out.');
          location.hash = '#/';
        },
      }, 'Sign out'),
    ] : [
      h('a', { href: `#/signin?next=${encodeURIComponent(location.hash || '#/')}` }, 'Sign in'),
      h('a', { href: '#/signup', class: 'button small' }, 'Sign up'),
    ]);
}

onSession(renderNav);
window.addEventListener('hashchange', () => {
  renderNav();
  route();
});
renderNav();
route();
