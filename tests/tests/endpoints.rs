//! Every endpoint in the OpenAPI document is called by some test.
//!
//! A guard, not a proof: it reads the document `marquee-openapi` prints and looks for each path
//! template in the test sources and golden scripts (`/v1/movies/{movie_id}/reviews` matches
//! `/v1/movies/{movie}/reviews` or `/v1/movies/13/reviews`: the literal parts in order, close
//! together). A path no test names is an endpoint no test calls; a path named is not proof that
//! every method and answer of it is tested. When this fails, write the missing test.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;

/// Whether `text` names `template`: its literal parts appear in order, each within a few
/// characters of the previous one (a parameter's value or a format argument between them).
fn names(text: &str, template: &str) -> bool {
    let parts: Vec<&str> = template
        .split('{')
        .enumerate()
        .map(
            |(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.split_once('}').map_or("", |(_, rest)| rest)
                }
            },
        )
        .collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    text.match_indices(first).any(|(start, _)| {
        let mut at = start + first.len();
        for part in rest {
            if part.is_empty() {
                continue;
            }
            let window = &text[at..text.len().min(at + 60 + part.len())];
            match window.find(part) {
                Some(offset) => at += offset + part.len(),
                None => return false,
            }
        }
        // A template ending in a parameter must be followed by one, not end there.
        rest.last()
            .is_none_or(|last| !last.is_empty() || text[at..].starts_with(|c: char| c != '"'))
    })
}

#[test]
fn every_endpoint_in_the_openapi_document_is_called_by_a_test() {
    let output = std::process::Command::new(tests::bin_dir().join("marquee-openapi"))
        .output()
        .expect("run marquee-openapi");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let spec: Value = serde_json::from_slice(&output.stdout).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = String::new();
    // Rust tests, the harness, and the golden scripts of the REST contract (tests/golden/).
    for dir in ["tests", "src", "src/bin", "golden"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let own = path.file_name().is_some_and(|n| n == "endpoints.rs");
            if path.extension().is_some_and(|e| e == "rs" || e == "txt") && !own {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 40, "the document lists the API: {}", paths.len());
    let missing: Vec<&String> = paths.keys().filter(|p| !names(&sources, p)).collect();
    assert!(missing.is_empty(), "endpoints no test calls: {missing:?}");
}

#[test]
fn names_matches_templates_with_values_or_format_arguments() {
    assert!(names(r#"format!("/v1/movies/{movie}/reviews")"#, "/v1/movies/{movie_id}/reviews"));
    assert!(names(r#""/v1/movies/13/reviews""#, "/v1/movies/{movie_id}/reviews"));
    assert!(names(r#""/v1/holds/{}", id"#, "/v1/holds/{hold_id}"));
    assert!(!names(r#""/v1/movies/13/shows""#, "/v1/movies/{movie_id}/reviews"));
    assert!(!names(r#""/v1/admin/screens""#, "/v1/admin/screens/{screen_id}"));
    assert!(names(r#""/v1/search?q=x""#, "/v1/search"));
}
