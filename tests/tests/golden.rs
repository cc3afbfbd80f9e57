//! Golden scripts for the REST contract: each file under `tests/golden/` specifies one
//! behaviour as requests and the status and problem `type` each must get (the error slugs are
//! listed in docs/api.md). One test runs every script, in file-name order, against one real
//! cluster, and reports every mismatch with its file and line.
//!
//! Script syntax (see any file in `tests/golden/` for an example):
//! - `# text`: a comment; blank lines are ignored.
//! - `METHOD /path [as admin|as customer|as stranger|as bearer TOKEN]`: a request, anonymous
//!   unless `as` names who sends it (two customer accounts, `customer` and `stranger`).
//! - `name: value` lines right after it: request headers.
//! - other lines up to the expectation: the body, sent verbatim as JSON.
//! - `=> STATUS [slug]`: the expected status and, for an error, the problem type's slug
//!   (the body must then be `application/problem+json` with that `status` member).
//!
//! `$show` is a show of 2 rows of 8 standard seats made for the run; `$hold_id`,
//! `$booking_id` are the last such ids any response carried.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use tests::{Cluster, Options};

/// One request of a script and what it must get.
struct Step {
    line: usize,
    method: reqwest::Method,
    path: String,
    who: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<String>,
    status: u16,
    slug: Option<String>,
}

/// Parses a script; panics (naming the file and line) on a syntax error.
fn parse(name: &str, text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut current: Option<(Step, Vec<String>)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let at = format!("{name}:{}", index + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(expect) = line.strip_prefix("=>") {
            let (mut step, body) =
                current.take().unwrap_or_else(|| panic!("{at}: => before a request"));
            let mut words = expect.split_whitespace();
            step.status = words
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{at}: => STATUS [slug]"));
            step.slug = words.next().map(str::to_owned);
            step.body = (!body.is_empty()).then(|| body.join("\n"));
            steps.push(step);
            continue;
        }
        match current.as_mut() {
            None => {
                let mut words = line.split_whitespace();
                let method =
                    words.next().unwrap().parse().unwrap_or_else(|_| panic!("{at}: method"));
                let path = words.next().unwrap_or_else(|| panic!("{at}: METHOD /path")).to_owned();
                let who = match (words.next(), words.next(), words.next()) {
                    (None, ..) => None,
                    (Some("as"), Some("bearer"), Some(token)) => Some(format!("bearer {token}")),
                    (Some("as"), Some(who), None) => Some(who.to_owned()),
                    _ => panic!("{at}: METHOD /path [as WHO]"),
                };
                let step = Step {
                    line: index + 1,
                    method,
                    path,
                    who,
                    headers: Vec::new(),
                    body: None,
                    status: 0,
                    slug: None,
                };
                current = Some((step, Vec::new()));
            }
            Some((step, body)) => match line.split_once(": ") {
                Some((name, value))
                    if body.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
                {
                    step.headers.push((name.to_owned(), value.to_owned()));
                }
                _ => body.push(raw.to_owned()),
            },
        }
    }
    assert!(current.is_none(), "{name}: the last request has no => expectation");
    steps
}

/// Replaces every `$name` of `vars` in `text` (longest names first).
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    names
        .into_iter()
        .fold(text.to_owned(), |text, name| text.replace(&format!("${name}"), &vars[name]))
}

/// Runs one script; returns its mismatches.
async fn run(
    cluster: &Cluster,
    tokens: &BTreeMap<&str, String>,
    vars: &mut BTreeMap<String, String>,
    name: &str,
    steps: &[Step],
) -> Vec<String> {
    let mut mismatches = Vec::new();
    for step in steps {
        let path = substitute(&step.path, vars);
        let mut request =
            cluster.http.request(step.method.clone(), format!("{}{path}", cluster.url));
        match step.who.as_deref() {
            None => {}
            Some(who) => {
                let token = match who.strip_prefix("bearer ") {
                    Some(token) => token.to_owned(),
                    None => tokens
                        .get(who)
                        .unwrap_or_else(|| panic!("{name}:{}: who is {who}?", step.line))
                        .clone(),
                };
                request = request.bearer_auth(token);
            }
        }
        for (header, value) in &step.headers {
            request = request.header(header, substitute(value, vars));
        }
        if let Some(body) = &step.body {
            request =
                request.header("content-type", "application/json").body(substitute(body, vars));
        }
        let (status, content_type, body) =
            tests::client::read_response(request.send().await.unwrap()).await;
        for id in ["hold_id", "booking_id"] {
            if let Some(value) = body[id].as_str() {
                vars.insert(id.to_owned(), value.to_owned());
            }
        }
        let at = format!("{name}:{} {} {path}", step.line, step.method);
        if status != step.status {
            mismatches.push(format!("{at}: expected {}, got {status} {body}", step.status));
            continue;
        }
        if let Some(slug) = &step.slug {
            let kind = body["type"].as_str().unwrap_or_default();
            let is_problem = content_type == "application/problem+json"
                && body["status"] == step.status
                && kind.ends_with(&format!("/problems/{slug}"));
            if !is_problem {
                mismatches
                    .push(format!("{at}: expected problem {slug}, got {content_type} {body}"));
            }
        }
    }
    mismatches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_script_of_the_rest_contract_holds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty(), "no scripts in {}", dir.display());
    let parsed: Vec<(String, Vec<Step>)> = scripts
        .iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let steps = parse(&name, &std::fs::read_to_string(path).unwrap());
            (name, steps)
        })
        .collect();

    let cluster = Cluster::start(Options::default()).await.unwrap();
    let show = cluster.create_show(2, 8).await.unwrap();
    let customer = cluster.user("customer").await.unwrap();
    let stranger = cluster.user("stranger").await.unwrap();
    let tokens = BTreeMap::from([
        ("admin", cluster.admin_token().to_owned()),
        ("customer", customer.token.clone()),
        ("stranger", stranger.token.clone()),
    ]);
    let mut vars = BTreeMap::from([("show".to_owned(), show.to_string())]);
    let mut mismatches = Vec::new();
    for (name, steps) in &parsed {
        eprintln!("behaviour: {name}");
        mismatches.extend(run(&cluster, &tokens, &mut vars, name, steps).await);
    }
    assert!(mismatches.is_empty(), "golden scripts failed:\n{}", mismatches.join("\n"));
}
