// The cluster console (admins, read-only): nodes (state, reachability, replicas, leaders),
// Raft groups (leader, term, applied index per replica, lag) and this gateway's request rate
// and latency, refreshed every two seconds from GET /v1/admin/cluster. A node that dies shows
// as unreachable at the next refresh.

import { api, session } from './api.js';
import { h, problemBox, replace, titled } from './ui.js';

const REFRESH_MS = 2000;

/** The latency at quantile `q` from two cumulative histograms (the requests between them). */
function quantile(before, after, q) {
  const deltas = after.map(([le, n], i) => [le, n - (before && before[i] ? before[i][1] : 0)]);
  const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (total <= 0) return null;
  const found = deltas.find(([, n]) => n >= q * total);
  return found ? found[0] : null;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  return seconds >= 1 ? `${seconds.toFixed(1)} s` : `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
}

function table(head, rows, id) {
  return h('div', { class: 'table-scroll' }, h('table', { id },
    h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows)));
}

export async function render(main) {
  const who = session();
  if (!who || who.user.role !== 'admin') {
    replace(main, h('h1', {}, 'Cluster'),
      h('p', { class: 'problem', id: 'not-admin' }, who ? 'The cluster console is for admins.' : 'Sign in with an admin account to see the cluster.'),
      who ? null : h('p', {}, h('a', { href: `#/signin?next=${encodeURIComponent('#/cluster')}` }, 'Sign in')));
    return undefined;
  }
  const updated = h('p', { class: 'meta', 'aria-live': 'polite', id: 'cluster-updated' }, 'Loading…');
  const traffic = h('section', { id: 'gateway-traffic' });
  const nodes = h('section');
  const groups = h('section');
  const problem = h('div');
  replace(main, h('h1', {}, 'Cluster'), updated, problem, traffic, nodes, groups);
  titled(main, 'Cluster');

  let previous = null;
  let stopped = false;
  let timer = null;
  async function poll() {
    try {
      const view = await api('/v1/admin/cluster', { auth: true });
      const now = Date.now();
      const g = view.gateway;
      let rate = null;
      let errors = null;
      let mean = null;
      let p99 = null;
      if (previous) {
        const seconds = (now - previous.at) / 1000;
        rate = (g.requests_total - previous.g.requests_total) / seconds;
        errors = (g.server_errors_total - previous.g.server_errors_total) / seconds;
        const n = g.latency_count - previous.g.latency_count;
        mean = n > 0 ? (g.latency_sum_s - previous.g.latency_sum_s) / n : null;
        p99 = quantile(previous.g.latency_buckets, g.latency_buckets, 0.99);
      }
      previous = { at: now, g };
      replace(problem);
      const down = view.nodes.filter((n) => !n.reachable).length;
      updated.textContent = `Map version ${view.map_version} · ${view.nodes.length} nodes, ${down ? `${down} unreachable` : 'all reachable'} · updated ${new Date().toLocaleTimeString()}`;
      replace(traffic, h('h2', {}, 'This gateway'),
        h('span', { class: 'stat' }, h('strong', {}, rate === null ? '–' : rate.toFixed(1)), 'requests/s'),
        h('span', { class: 'stat' }, h('strong', {}, errors === null ? '–' : errors.toFixed(2)), '5xx/s'),
        h('span', { class: 'stat' }, h('strong', {}, ms(mean)), 'mean latency'),
        h('span', { class: 'stat' }, h('strong', {}, p99 === null ? '–' : `≤ ${ms(p99)}`), 'p99 latency'),
        h('span', { class: 'stat' }, h('strong', {}, String(g.requests_total)), 'requests since start'));
      replace(nodes, h('h2', {}, 'Nodes'), table(['Node', 'Address', 'State', 'Reachable', 'Replicas', 'Leads'],
        view.nodes.map((n) => h('tr', { dataset: { node: String(n.node_id) } },
          h('td', {}, String(n.node_id)), h('td', {}, n.addr), h('td', {}, n.state),
          h('td', { class: n.reachable ? 'good' : 'bad', title: n.error || '' }, n.reachable ? 'reachable' : 'unreachable'),
          h('td', {}, String(n.replicas.length)), h('td', {}, n.leads.join(', ') || '–'))), 'nodes'));
      replace(groups, h('h2', {}, 'Raft groups'), table(['Group', 'Kind', 'Shows', 'Leader', 'Term', 'Last log', 'Applied (node: index)', 'Lag'],
        view.groups.map((gr) => h('tr', { dataset: { group: String(gr.group_id) } },
          h('td', {}, String(gr.group_id)), h('td', {}, gr.kind), h('td', {}, String(gr.shows)),
          h('td', { class: gr.leader ? '' : 'bad' }, gr.leader ? String(gr.leader) : 'none'),
          h('td', {}, gr.term === null ? '–' : String(gr.term)),
          h('td', {}, gr.last_log_index === null ? '–' : String(gr.last_log_index)),
          h('td', {}, Object.entries(gr.applied).map(([node, i]) => `${node}: ${i === null ? '?' : i}`).join('  ')),
          h('td', {}, gr.lag === null ? '–' : String(gr.lag)))), 'groups'));
    } catch (error) {
      replace(problem, problemBox(error));
    }
    if (!stopped) timer = setTimeout(poll, REFRESH_MS);
  }
  await poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
