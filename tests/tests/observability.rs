//! Dashboards and alerts against the processes they watch (docs/operations.md, "Dashboards and
//! alerts"): every metric that the Grafana dashboard (`deploy/grafana/marquee.json`) and the
//! Prometheus rules (`deploy/prometheus/alerts.yml`) query is exported by a running Marquee
//! process, with the label values they select; the dashboard is well formed; and promtool
//! accepts the rules and the scrape configuration and passes the rules' unit tests.
//!
//! A renamed metric, a misspelt one in a panel, or a rule that no longer fires on its failing
//! series each fail here rather than on an operator's empty graph or silent pager.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tests::{bin_dir, eventually, free_port, Cluster, Options};

/// The repository's root (this crate is `tests/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

// ---- PromQL: which series an expression selects -------------------------------------------

/// A metric selector in a PromQL expression: its name and its equality label matchers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    name: String,
    equals: Vec<(String, String)>,
}

/// Words that are not metric names: binary operators and modifiers.
const KEYWORDS: [&str; 9] =
    ["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start"];
/// Modifiers followed by a parenthesised list of labels.
const LABEL_LISTS: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// The metric selectors of a PromQL expression (functions, aggregations, keywords, label
/// lists, range durations, numbers, strings and Grafana variables are skipped).
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i).1;
        } else if c == '[' {
            i = skip_balanced(&chars, i, '[', ']');
        } else if c == '{' {
            // Matchers without a metric name: nothing to check by name.
            i = matchers(&chars, i).1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            i += 1;
            if i < chars.len() && chars[i] == '{' {
                i = skip_balanced(&chars, i, '{', '}');
            }
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            let lower = word.to_ascii_lowercase();
            if LABEL_LISTS.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    i = skip_balanced(&chars, next, '(', ')');
                }
            } else if KEYWORDS.contains(&lower.as_str())
                || chars.get(next) == Some(&'(')
                || ["by", "without"].contains(&word_at(&chars, next).as_str())
            {
                // An operator, or a function or aggregation (`sum by (x) (...)` too): its
                // arguments are read as they come.
            } else if chars.get(next) == Some(&'{') {
                let (equals, end) = matchers(&chars, next);
                out.push(Selector { name: word, equals });
                i = end;
            } else {
                out.push(Selector { name: word, equals: Vec::new() });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The (lowercased) word starting at `start`, if any.
fn word_at(chars: &[char], start: usize) -> String {
    chars[start.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_alphanumeric() || **c == '_')
        .collect::<String>()
        .to_ascii_lowercase()
}

/// The string literal starting at `start` (its quote) and the index after it.
fn skip_string(chars: &[char], start: usize) -> (String, usize) {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' && i + 1 < chars.len() {
            i += 1;
        }
        value.push(chars[i]);
        i += 1;
    }
    (value, i + 1)
}

/// The index after the bracket closing the one at `start`.
fn skip_balanced(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
            i = skip_string(chars, i).1;
            continue;
        }
        if chars[i] == open {
            depth += 1;
        } else if chars[i] == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// The equality matchers of the `{...}` block at `start`, and the index after it.
fn matchers(chars: &[char], start: usize) -> (Vec<(String, String)>, usize) {
    let mut equals = Vec::new();
    let mut i = start + 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '}' {
            return (equals, i + 1);
        }
        let label_start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let label: String = chars[label_start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let op_start = i;
        while i < chars.len() && matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        assert!(
            i < chars.len() && matches!(chars[i], '"' | '\'' | '`'),
            "malformed matcher after {label}{op} in {}",
            chars.iter().collect::<String>()
        );
        let (value, end) = skip_string(chars, i);
        i = end;
        if op == "=" {
            equals.push((label, value));
        }
    }
}

#[test]
fn the_promql_reader_finds_metric_selectors_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{job="x", le=~"1|2"}[$__rate_interval])))
        + max without (le) (e) + sum(f) by (group)
        / on (instance) group_left (zone) b_total offset 5m > bool 0.5 or count(c{field="is_leader"} < 1) or vector(0)
        and topk(3, d:recorded) unless up{job="marquee-node"} == 0"#;
    let found = selectors(expr);
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a_bucket", "e", "f", "b_total", "c", "d:recorded", "up"]);
    assert_eq!(found[0].equals, [("job".to_owned(), "x".to_owned())]);
    assert_eq!(found[4].equals, [("field".to_owned(), "is_leader".to_owned())]);
    assert_eq!(found[6].equals, [("job".to_owned(), "marquee-node".to_owned())]);
}

// ---- Prometheus text exposition ------------------------------------------------------------

/// Samples of one scrape: metric name -> the label sets it was exported with.
type Exported = HashMap<String, Vec<BTreeMap<String, String>>>;

/// Parses the Prometheus text format (sample lines; comments skipped) into `into`.
fn parse_exposition(text: &str, into: &mut Exported) {
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let chars: Vec<char> = line.chars().collect();
        let end = chars.iter().position(|c| *c == '{' || c.is_whitespace()).unwrap_or(chars.len());
        let name: String = chars[..end].iter().collect();
        let mut labels = BTreeMap::new();
        if chars.get(end) == Some(&'{') {
            let mut i = end + 1;
            while i < chars.len() && chars[i] != '}' {
                let eq = i + chars[i..].iter().position(|c| *c == '=').unwrap();
                let label: String = chars[i..eq].iter().collect::<String>().trim().to_owned();
                let (value, after) = skip_string(&chars, eq + 1);
                labels.insert(label.trim_start_matches(',').trim().to_owned(), value);
                i = after;
                while i < chars.len() && (chars[i] == ',' || chars[i].is_whitespace()) {
                    i += 1;
                }
            }
        }
        into.entry(name).or_default().push(labels);
    }
}

/// What is wrong with `selector` against what the processes export (`None`: it selects
/// something).
fn unexported(selector: &Selector, exported: &Exported) -> Option<String> {
    let Some(samples) = exported.get(&selector.name) else {
        return Some(format!("metric {} is not exported by any process", selector.name));
    };
    let matches = samples.iter().any(|labels| {
        selector.equals.iter().all(|(label, value)| labels.get(label) == Some(value))
    });
    (!matches).then(|| {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for (label, _) in &selector.equals {
            seen.extend(
                samples.iter().filter_map(|l| l.get(label)).map(|v| format!("{label}={v}")),
            );
        }
        format!("no series of {} has {:?} (exported: {seen:?})", selector.name, selector.equals)
    })
}

// ---- what the dashboard and the rules query -------------------------------------------------

/// `(where, expr)` of every query of the dashboard.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default().to_owned();
            out.push((format!("panel {:?}", panel["title"].as_str().unwrap_or("?")), expr));
        }
    }
    out
}

/// Every panel, those inside collapsed rows included.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        out.push(panel);
        out.extend(panel["panels"].as_array().into_iter().flatten());
    }
    out
}

/// `(alert, expr)` of every rule of a Prometheus rule file. A line reader for the shapes the
/// file uses (`expr: inline` and folded `expr: >-` blocks); `promtool check rules` checks the
/// YAML itself, and the count of rules read is checked against the count of `- alert:` lines.
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut alert: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        i += 1;
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = Some(name.trim().to_owned());
        } else if let Some(rest) = trimmed.strip_prefix("expr:") {
            let rest = rest.trim();
            let expr = if rest.starts_with('>') || rest.starts_with('|') {
                let mut block = Vec::new();
                while i < lines.len()
                    && (lines[i].trim().is_empty()
                        || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    block.push(lines[i].trim());
                    i += 1;
                }
                block.join(" ")
            } else {
                rest.trim_matches(|c| c == '"' || c == '\'').to_owned()
            };
            out.push((alert.take().expect("every expr belongs to an alert"), expr));
        }
    }
    let alerts = lines.iter().filter(|l| l.trim_start().starts_with("- alert:")).count();
    assert_eq!(out.len(), alerts, "one expr read per alert rule");
    out
}

/// The scrape job names of a Prometheus configuration (line reader, as above).
fn scrape_jobs(yaml: &str) -> BTreeSet<String> {
    yaml.lines()
        .filter_map(|l| l.trim_start().strip_prefix("- job_name:"))
        .map(|j| j.trim().trim_matches('"').to_owned())
        .collect()
}

// ---- the dashboard on its own -------------------------------------------------------------

#[test]
fn the_dashboard_is_well_formed_and_its_datasource_templated() {
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/marquee.json"))
        .expect("deploy/grafana/marquee.json is valid JSON");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()), "a title");
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()), "a uid");
    assert!(dashboard["schemaVersion"].as_u64().is_some(), "a schemaVersion");
    // The data source is chosen on import: a `datasource` variable of type prometheus.
    let variables = dashboard["templating"]["list"].as_array().expect("templating.list");
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "a `datasource` template variable of type prometheus"
    );
    let templated = |ds: &Value| ds["uid"] == "${datasource}" && ds["type"] == "prometheus";
    let mut ids = BTreeSet::new();
    let mut cells: BTreeSet<(u64, u64)> = BTreeSet::new();
    let panels = all_panels(&dashboard);
    assert!(panels.len() > 10, "a dashboard worth the name: {} panels", panels.len());
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "every panel has a title: {panel}");
        let id = panel["id"].as_u64().unwrap_or_else(|| panic!("panel {title:?} has an id"));
        assert!(ids.insert(id), "panel id {id} ({title:?}) is unique");
        let pos = &panel["gridPos"];
        let [h, w, x, y] = ["h", "w", "x", "y"]
            .map(|k| pos[k].as_u64().unwrap_or_else(|| panic!("panel {title:?} has gridPos.{k}")));
        assert!(h >= 1 && (1..=24).contains(&w) && x + w <= 24, "panel {title:?} fits: {pos}");
        // No two panels overlap: each grid cell belongs to one panel.
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "panel {title:?} overlaps another at {cell:?}");
        }
        if panel["type"] == "row" {
            continue;
        }
        assert!(templated(&panel["datasource"]), "panel {title:?} uses ${{datasource}}");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("panel {title:?} has targets"));
        let mut refs = BTreeSet::new();
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "panel {title:?}: every target has an expr");
            assert!(
                templated(&target["datasource"]),
                "panel {title:?}: target uses ${{datasource}}"
            );
            let reference = target["refId"].as_str().unwrap_or_default();
            assert!(
                refs.insert(reference.to_owned()),
                "panel {title:?}: refId {reference:?} unique"
            );
        }
    }
    // It covers what an operator watches (issue: bookings, holds, latency, Raft, group commit,
    // batching, sweeper, search, live connections, disk).
    let queried: BTreeSet<String> = dashboard_exprs(&dashboard)
        .iter()
        .flat_map(|(_, e)| selectors(e))
        .map(|s| s.name)
        .collect();
    for needed in [
        "marquee_gateway_bookings_total",
        "marquee_gateway_holds_total",
        "marquee_gateway_requests_total",
        "marquee_gateway_request_latency_seconds_bucket",
        "marquee_node_raft",
        "marquee_node_writer_batches_total",
        "marquee_node_writer_sync_seconds_bucket",
        "marquee_node_proposal_batch_size_bucket",
        "marquee_gateway_sweeper_backlog",
        "marquee_gateway_search",
        "marquee_gateway_live_connections",
        "marquee_node_disk_available_bytes",
    ] {
        assert!(queried.contains(needed), "the dashboard charts {needed}");
    }
}

// ---- promtool -----------------------------------------------------------------------------

/// `promtool` on the PATH (Debian's `prometheus` package; scripts/test installs it).
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("promtool")).find(|p| p.is_file())
}

fn run_promtool(promtool: &Path, args: &[&str]) {
    let output = Command::new(promtool).args(args).current_dir(repo()).output().unwrap();
    assert!(
        output.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_and_config_and_each_alert_fires_only_when_it_should() {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var("MARQUEE_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
            "promtool not found on PATH, and MARQUEE_REQUIRE_PROMTOOL=1: install Debian's \
             `prometheus` package (apt-get install prometheus; scripts/test does)"
        );
        eprintln!("skipped: promtool not found (apt-get install prometheus)");
        return;
    };
    run_promtool(&promtool, &["check", "rules", "deploy/prometheus/alerts.yml"]);
    run_promtool(&promtool, &["check", "config", "deploy/prometheus/prometheus.yml"]);
    // alerts.test.yml feeds every alert a failing and a healthy series (see the file).
    run_promtool(&promtool, &["test", "rules", "deploy/prometheus/alerts.test.yml"]);
    let tested: BTreeSet<String> = read("deploy/prometheus/alerts.test.yml")
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("alertname:"))
        .map(|a| a.trim().to_owned())
        .collect();
    for (alert, _) in rule_exprs(&read("deploy/prometheus/alerts.yml")) {
        assert!(tested.contains(&alert), "alerts.test.yml tests {alert}");
    }
}

// ---- against a running cluster ------------------------------------------------------------

/// A `marquee-search-sync` process (the Meilisearch writer), killed when dropped. Its
/// Meilisearch is a closed port: it starts, retries, and serves its metrics all the same.
struct SearchSync(Child);

impl Drop for SearchSync {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap_or_else(|e| panic!("scraping {url}: {e}"));
    assert_eq!(response.status(), 200, "{url}");
    response.text().await.unwrap()
}

/// A cluster that has done what puts every series on the wire: a hold, a booking, its
/// cancellation (refund), catalog reads (cache), a live seat-map connection that the client
/// closes, a request refused by a rate limit (a second gateway with a tight one), and the
/// search writer. Every process is scraped, and every selector of the dashboard and of the
/// alert rules must select something (`up` comes from Prometheus itself: its `job` must be a
/// scrape job of prometheus.yml).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_the_dashboard_and_alerts_query_is_exported() {
    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(2, 10).await.unwrap();
    let user = cluster.user("observer").await.unwrap();

    let (status, hold) =
        user.hold(show, json!({"quantity": 2, "category": "standard"})).await.unwrap();
    assert_eq!(status, 201, "{hold}");
    let (status, booking) = user
        .book(hold["hold_id"].as_str().unwrap(), "tok_success", "observability-1")
        .await
        .unwrap();
    assert_eq!(status, 201, "{booking}");
    let booking_id = booking["booking_id"].as_str().unwrap();
    let (status, cancelled) = user
        .send(reqwest::Method::POST, &format!("/v1/bookings/{booking_id}/cancel"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{cancelled}");
    for _ in 0..2 {
        let response =
            cluster.http.get(format!("{}/v1/movies/1", cluster.url)).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let live = format!("{}/v1/shows/{show}/live", cluster.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&live).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), socket.next()).await.unwrap();
    assert!(first.is_some(), "the live seat map sends its snapshot");
    socket.close(None).await.unwrap();
    drop(socket);

    let limited = Options {
        rate_limit_ip_per_s: 0.01,
        gateway_env: vec![("MARQUEE_GATEWAY_RATE_LIMIT_IP_BURST".into(), "1".into())],
        ..Options::default()
    };
    let limited = cluster.spawn_gateway("limited", &limited).await.unwrap();
    let mut refused = false;
    for _ in 0..5 {
        let response = cluster.http.get(format!("{}/v1/cities", limited.url)).send().await.unwrap();
        refused |= response.status() == 429;
    }
    assert!(refused, "the tightly limited gateway answers 429");

    let search_port = free_port();
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.grpc.clone()).collect();
    let log = std::fs::File::create(cluster.dir.path().join("search-sync.log")).unwrap();
    let search_sync = SearchSync(
        Command::new(bin_dir().join("marquee-search-sync"))
            .arg(format!("--nodes={}", nodes.join(",")))
            .arg(format!("--meili-url=http://127.0.0.1:{}", free_port()))
            .arg(format!("--cursor-file={}", cluster.dir.path().join("search.cursor").display()))
            .arg(format!("--metrics-addr=127.0.0.1:{search_port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning marquee-search-sync (cargo build --workspace --bins)"),
    );

    // The gateway counts a closed live connection once its handler has finished.
    let closed = "marquee_gateway_live_closed_total{reason=\"client\"}";
    eventually("the live connection counted as closed", Duration::from_secs(15), || async {
        Ok((cluster.metric(&cluster.url, closed).await? >= 1.0).then_some(()))
    })
    .await
    .unwrap();

    let mut exported = Exported::new();
    let mut endpoints: Vec<String> =
        cluster.nodes.iter().map(|n| format!("http://{}/metrics", n.http)).collect();
    endpoints.push(format!("{}/metrics", cluster.url));
    endpoints.push(format!("{}/metrics", limited.url));
    for url in &endpoints {
        parse_exposition(&scrape(&cluster.http, url).await, &mut exported);
    }
    let search_metrics = format!("http://127.0.0.1:{search_port}/metrics");
    let text =
        eventually("marquee-search-sync serving metrics", Duration::from_secs(30), || async {
            Ok(Some(cluster.http.get(&search_metrics).send().await?.text().await?))
        })
        .await
        .unwrap();
    parse_exposition(&text, &mut exported);
    drop(search_sync);

    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/marquee.json")).unwrap();
    let mut queries = dashboard_exprs(&dashboard);
    queries.extend(
        rule_exprs(&read("deploy/prometheus/alerts.yml"))
            .into_iter()
            .map(|(alert, expr)| (format!("alert {alert}"), expr)),
    );
    let jobs = scrape_jobs(&read("deploy/prometheus/prometheus.yml"));
    let mut problems = Vec::new();
    let mut checked = 0;
    for (place, expr) in &queries {
        let found = selectors(expr);
        if found.is_empty() {
            problems.push(format!("{place}: no metric in {expr:?}"));
        }
        for selector in found {
            checked += 1;
            if selector.name == "up" {
                // Prometheus's own series, one per scrape target: its job must be scraped.
                for (_, job) in selector.equals.iter().filter(|(l, _)| l == "job") {
                    if !jobs.contains(job) {
                        problems.push(format!("{place}: up{{job={job:?}}}: no such scrape job"));
                    }
                }
                continue;
            }
            if let Some(problem) = unexported(&selector, &exported) {
                problems.push(format!("{place}: {problem}"));
            }
        }
    }
    assert!(checked > 40, "the queries name metrics: {checked} selectors");
    assert!(problems.is_empty(), "queries of metrics no process exports:\n{}", problems.join("\n"));
}
