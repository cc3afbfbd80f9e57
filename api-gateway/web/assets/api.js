// Talking to the Marquee REST API (docs/api.md): JSON in and out, the signed-in session with
// silent token refresh, and every error turned into an ApiError carrying the problem+json
// `title` and `detail`, so pages can always tell the person what went wrong.

const SESSION_KEY = 'marquee.session';

/** An API answer that was not a success, or a request that never got one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.title = problem.title || 'Something went wrong';
    this.detail = problem.detail || '';
    // The stable slug of the problem type, e.g. "payment-declined".
    this.type = (problem.type || '').split('/').pop();
  }
}

const listeners = new Set();

/** Calls `fn(session)` whenever the session changes (sign in, refresh, sign out). */
export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The stored session: {access_token, refresh_token, expires_at, user}, or null. */
export function session() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) || 'null');
  } catch {
    return null;
  }
}

function store(tokens) {
  const previous = session();
  const next = tokens && {
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    // Refresh a little before the server would refuse the token.
    expires_at: Date.now() + (tokens.expires_in - 30) * 1000,
    user: tokens.user || (previous && previous.user),
  };
  if (next) localStorage.setItem(SESSION_KEY, JSON.stringify(next));
  else localStorage.removeItem(SESSION_KEY);
  for (const fn of listeners) fn(next);
  return next;
}

// Another tab signing in or out changes this tab's session too.
window.addEventListener('storage', (event) => {
  if (event.key === SESSION_KEY) for (const fn of listeners) fn(session());
});

let refreshing = null;

/** Exchanges the refresh token for new tokens, once at a time per tab. */
async function refresh() {
  const current = session();
  if (!current) return null;
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const tokens = await request('/v1/auth/refresh', {
          method: 'POST',
          body: { refresh_token: current.refresh_token },
        });
        return store(tokens);
      } catch (error) {
        // Another tab may have refreshed first (refresh tokens are single use).
        const now = session();
        if (now && now.refresh_token !== current.refresh_token) return now;
        if (error instanceof ApiError && error.status === 401) store(null);
        throw error;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

async function accessToken() {
  let current = session();
  if (current && Date.now() >= current.expires_at) current = await refresh();
  return current && current.access_token;
}

/** Server clock minus local clock (ms), learned from responses' Date headers. */
export let clockSkewMs = 0;

async function request(path, { method = 'GET', body, token, headers = {} } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  let response;
  const sent = Date.now();
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, {
      title: 'Cannot reach Marquee',
      detail: 'The server did not answer. Check your connection and try again.',
    });
  }
  const date = Date.parse(response.headers.get('Date') || '');
  if (!Number.isNaN(date)) clockSkewMs = date + 500 - (sent + Date.now()) / 2;
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  const text = await response.text();
  let data = null;
  if (type.includes('json') && text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, data || { title: `HTTP ${response.status}`, detail: text.slice(0, 300) });
  }
  return data === null ? text : data;
}

/**
 * Calls the API. `auth: true` sends the session's access token (refreshed first when due, and
 * once more if the server still answers 401); without a session it fails like the server would.
 */
export async function api(path, options = {}) {
  if (!options.auth) return request(path, options);
  const token = await accessToken();
  if (!token) {
    throw new ApiError(401, { title: 'Sign in needed', detail: 'Sign in to continue.', type: 'unauthorized' });
  }
  try {
    return await request(path, { ...options, token });
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401 || error.type === 'refresh-token-reused') throw error;
    const renewed = await refresh();
    if (!renewed) throw error;
    return request(path, { ...options, token: renewed.access_token });
  }
}

/** Signs in (or registers, with `name`) and stores the session. */
export async function signIn(email, password, name) {
  const path = name === undefined ? '/v1/auth/login' : '/v1/auth/register';
  const body = name === undefined ? { email, password } : { email, password, name };
  return store(await request(path, { method: 'POST', body }));
}

/** Signs out here and revokes the refresh token on the server (best effort). */
export async function signOut() {
  const current = session();
  store(null);
  if (current) {
    try {
      await request('/v1/auth/logout', { method: 'POST', body: { refresh_token: current.refresh_token } });
    } catch {
      // Signed out locally either way; the token expires on its own.
    }
  }
}

/** Re-reads the account (role changes apply at the next token; see docs/api.md). */
export async function refreshUser() {
  const user = await api('/v1/me', { auth: true });
  const current = session();
  if (current) {
    current.user = user;
    localStorage.setItem(SESSION_KEY, JSON.stringify(current));
  }
  return user;
}

/** A random idempotency key (works on plain-HTTP origins, unlike crypto.randomUUID). */
export function randomKey(prefix = 'web') {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
