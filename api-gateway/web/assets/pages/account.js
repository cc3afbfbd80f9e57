// Sign up and sign in. Tokens are kept in localStorage and refreshed silently (api.js).

import { signIn } from '../api.js';
import { busy, flash, h, hashParams, replace, titled } from '../ui.js';

export async function render(main, [mode]) {
  const up = mode === 'signup';
  const next = hashParams().get('next') || '#/';
  const status = h('div', { 'aria-live': 'assertive' });
  const name = up ? h('input', { id: 'name', name: 'name', autocomplete: 'name', required: true, maxlength: '100' }) : null;
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'email', required: true });
  const password = h('input', {
    id: 'password', name: 'password', type: 'password', required: true,
    autocomplete: up ? 'new-password' : 'current-password', minlength: up ? '8' : null,
  });
  const submit = h('button', { type: 'submit', id: 'account-submit' }, up ? 'Create account' : 'Sign in');
  const form = h('form', {
    class: 'account', onsubmit: (e) => {
      e.preventDefault();
      busy(submit, async () => {
        const s = await signIn(email.value.trim(), password.value, up ? name.value.trim() : undefined);
        flash(up ? `Welcome, ${s.user.name}!` : `Signed in as ${s.user.name}.`);
        location.hash = next.startsWith('#/sign') ? '#/' : next;
      }, status);
    },
  },
  up ? [h('label', { for: 'name' }, 'Name'), name] : null,
  h('label', { for: 'email' }, 'Email'), email,
  h('label', { for: 'password' }, up ? 'Password (8 characters or more)' : 'Password'), password,
  submit, status,
  h('p', {}, up ? 'Have an account? ' : 'New here? ',
    h('a', { href: `#/${up ? 'signin' : 'signup'}?next=${encodeURIComponent(next)}` }, up ? 'Sign in' : 'Create an account')));
  replace(main, h('h1', {}, up ? 'Create your account' : 'Sign in'), form);
  titled(main, up ? 'Sign up' : 'Sign in');
}
