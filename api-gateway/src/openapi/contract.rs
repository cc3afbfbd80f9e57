//! What turns the document utoipa derives from the handlers into an exact contract: a request the
//! document allows is one the gateway accepts, one it forbids is refused, every status a handler
//! can answer is listed, and every response matches its schema (issue #15, item 5; checked by
//! the schemathesis run of `tests/tests/contract.rs`).
//!
//! Three passes over the rendered JSON, because derive macros cannot say these things:
//! - **Compositions flattened.** `#[serde(flatten)]` derives `allOf: [Spec, {extra fields}]`,
//!   and a request spec's `additionalProperties: false` then forbids the extra fields, so a
//!   stored movie could not match its own schema. Every `allOf` of objects becomes one object
//!   with all the fields, so response types (`Movie`) are complete schemas of their own, distinct
//!   from the request specs (`MovieSpec`, `NewMovie`).
//! - **Statuses every handler shares**: 401 where a token is required, 400/413/415/422 where a
//!   JSON body is read, 400 and 422 where query parameters are, 404 where a path names a record,
//!   and 429, 500 and 503 everywhere (rate limits, bugs, an unreachable cluster).
//! - **Constraints the server enforces**: lengths, ranges, patterns and enums, written here from
//!   the same constants the handlers and state machines check (`proto::limits`), so the two
//!   cannot drift apart silently. String lengths are UTF-8 bytes on the server; JSON Schema
//!   counts characters, so `maxLength` is exact for ASCII and an upper bound otherwise
//!   (docs/api.md, "Limits").

use serde_json::{json, Map, Value};

use proto::limits::{
    CATALOG_TEXT_BYTES_MAX, CATEGORIES_MAX, EMAIL_BYTES_MAX, HOLD_TTL_MS_MIN, NAME_BYTES_MAX,
    PARTY_SIZE_MAX, PRICE_MINOR_MAX, ROWS_MAX, ROW_LABEL_BYTES_MAX, ROW_SEATS_MAX, SHOW_ID_MAX,
    TICKET_CODE_BYTES_MAX, URL_BYTES_MAX, USER_NAME_BYTES_MAX,
};

/// Characters Rust's `char::is_control` matches (Unicode `Cc`).
const CONTROL: &str = "\\u0000-\\u001f\\u007f-\\u009f";
/// Characters Rust's `char::is_whitespace` matches (Unicode `White_Space`); spelled out because
/// regex engines disagree on `\s`.
const SPACE: &str =
    "\\t\\n\\u000b\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

/// A text without control characters (the state machines' `check_text`).
fn text(min: usize, max: usize) -> Value {
    json!({"minLength": min, "maxLength": max, "pattern": format!("^[^{CONTROL}]*$")})
}

/// A text without control characters that is not only whitespace.
fn visible_text(max: usize) -> Value {
    json!({
        "minLength": 1,
        "maxLength": max,
        "pattern": format!("^[^{CONTROL}]*[^{CONTROL}{SPACE}][^{CONTROL}]*$"),
    })
}

/// What the document states that depends on the gateway's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Longest hold (`--hold-ttl-max-ms`).
    pub hold_ttl_max_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { hold_ttl_max_ms: crate::config::HOLD_TTL_MAX_MS_DEFAULT }
    }
}

/// The document, made exact (see the module docs).
pub fn exact(mut doc: Value, settings: Settings) -> Value {
    flatten_compositions(&mut doc);
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        constrain_schemas(schemas, settings);
        role_request(schemas);
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else { continue };
            for (method, operation) in item.iter_mut() {
                constrain_parameters(path, method, operation);
                add_statuses(path, operation);
            }
        }
    }
    doc
}

/// Merges every `allOf` whose members are objects (inline or `$ref`) into one object schema:
/// the component schemas first (several passes: a body over a record over a spec), then every
/// inline one (the generic pages' items).
fn flatten_compositions(doc: &mut Value) {
    for _ in 0..8 {
        let Some(snapshot) = doc.pointer("/components/schemas").and_then(Value::as_object).cloned()
        else {
            return;
        };
        let mut changed = false;
        if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut)
        {
            for schema in schemas.values_mut() {
                changed |= flatten_here(schema, &snapshot);
            }
        }
        if !changed {
            break;
        }
    }
    let Some(snapshot) = doc.pointer("/components/schemas").and_then(Value::as_object).cloned()
    else {
        return;
    };
    flatten_everywhere(doc, &snapshot);
}

fn flatten_everywhere(value: &mut Value, components: &Map<String, Value>) {
    flatten_here(value, components);
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| flatten_everywhere(v, components)),
        Value::Array(items) => items.iter_mut().for_each(|v| flatten_everywhere(v, components)),
        _ => {}
    }
}

/// Replaces `schema` by the merge of its `allOf` when every member is an object schema whose
/// own members are already merged; returns whether it did.
fn flatten_here(schema: &mut Value, components: &Map<String, Value>) -> bool {
    let Some(all_of) = schema.get("allOf").and_then(Value::as_array) else { return false };
    let mut parts = Vec::new();
    for part in all_of {
        let resolved = match part.get("$ref").and_then(Value::as_str) {
            Some(r) => components.get(r.trim_start_matches("#/components/schemas/")),
            None => Some(part),
        };
        match resolved {
            Some(p) if p.get("allOf").is_none() && is_object_schema(p) => parts.push(p.clone()),
            _ => return false,
        }
    }
    let mut merged = Map::new();
    merged.insert("type".into(), json!("object"));
    let mut properties = Map::new();
    let mut required = Vec::<Value>::new();
    let mut closed = false;
    for part in parts {
        if let Some(p) = part.get("properties").and_then(Value::as_object) {
            properties.extend(p.clone());
        }
        for r in part.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !required.contains(r) {
                required.push(r.clone());
            }
        }
        closed |= part.get("additionalProperties") == Some(&json!(false));
    }
    if let Some(description) = schema.get("description") {
        merged.insert("description".into(), description.clone());
    }
    merged.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        merged.insert("required".into(), Value::Array(required));
    }
    if closed {
        merged.insert("additionalProperties".into(), json!(false));
    }
    *schema = Value::Object(merged);
    true
}

fn is_object_schema(schema: &Value) -> bool {
    schema.get("type") == Some(&json!("object")) || schema.get("properties").is_some()
}

/// Applies `patch` to property `property` of component schema `schema` (merging keys).
fn patch(schemas: &mut Map<String, Value>, schema: &str, property: &str, patch: Value) {
    let Some(target) = schemas
        .get_mut(schema)
        .and_then(|s| s.get_mut("properties"))
        .and_then(|p| p.get_mut(property))
    else {
        return;
    };
    merge(target, patch);
}

fn merge(target: &mut Value, patch: Value) {
    // A nullable `$ref` (`oneOf: [null, {$ref}]`) or a plain one: constrain the value itself.
    if let (Some(t), Value::Object(p)) = (target.as_object_mut(), patch) {
        for (k, v) in p {
            t.insert(k, v);
        }
    }
}

/// Server-side bounds on request bodies, property by property.
fn constrain_schemas(schemas: &mut Map<String, Value>, settings: Settings) {
    let id = json!({"minimum": 1, "maximum": SHOW_ID_MAX});
    let name = text(1, NAME_BYTES_MAX);
    let movie = ["MovieSpec", "NewMovie"];
    for schema in movie {
        patch(schemas, schema, "title", name.clone());
        patch(schemas, schema, "description", text(0, CATALOG_TEXT_BYTES_MAX));
        patch(
            schemas,
            schema,
            "genres",
            json!({"minItems": 1, "maxItems": 10,
                   "items": {"type": "string", "pattern": "^[a-z_-]{1,40}$"}}),
        );
        patch(
            schemas,
            schema,
            "language",
            json!({"minLength": 1, "maxLength": 40,
                   "pattern": format!("^[^{CONTROL}A-Z]*$")}),
        );
        patch(schemas, schema, "duration_min", json!({"minimum": 1, "maximum": 1000}));
        patch(schemas, schema, "release_date", json!({"pattern": CALENDAR_DATE_PATTERN}));
        let mut cast = json!({"type": "string"});
        merge(&mut cast, name.clone());
        patch(schemas, schema, "cast", json!({"maxItems": 50, "items": cast}));
        patch(schemas, schema, "director", text(0, NAME_BYTES_MAX));
        patch(schemas, schema, "certificate", text(0, 16));
        patch(
            schemas,
            schema,
            "poster_url",
            json!({"maxLength": URL_BYTES_MAX, "pattern": format!("^https?://[^{CONTROL}{SPACE}]*$")}),
        );
    }
    patch(schemas, "NewMovie", "movie_id", id.clone());
    for schema in ["TheaterSpec", "NewTheater"] {
        patch(schemas, schema, "name", name.clone());
        patch(schemas, schema, "city", text(1, 100));
        patch(schemas, schema, "address", text(0, 500));
        patch(schemas, schema, "lat_e6", json!({"minimum": -90_000_000, "maximum": 90_000_000}));
        patch(schemas, schema, "lon_e6", json!({"minimum": -180_000_000, "maximum": 180_000_000}));
        let mut amenity = json!({"type": "string"});
        merge(&mut amenity, text(1, 60));
        patch(schemas, schema, "amenities", json!({"maxItems": 20, "items": amenity}));
        patch(schemas, schema, "utc_offset_minutes", json!({"minimum": -840, "maximum": 840}));
    }
    patch(schemas, "NewTheater", "theater_id", id.clone());
    for schema in ["ScreenSpec", "NewScreen", "PutScreen"] {
        patch(schemas, schema, "name", name.clone());
        patch(schemas, schema, "rows", json!({"minItems": 1, "maxItems": ROWS_MAX}));
    }
    patch(schemas, "NewScreen", "screen_id", id.clone());
    patch(schemas, "PutScreen", "theater_id", json!({"maximum": u64::MAX}));
    patch(
        schemas,
        "RowSpec",
        "label",
        json!({"pattern": format!("^[A-Za-z]{{1,{ROW_LABEL_BYTES_MAX}}}$")}),
    );
    patch(schemas, "RowSpec", "category", text(1, NAME_BYTES_MAX));
    patch(schemas, "RowSpec", "seats", json!({"minimum": 1, "maximum": ROW_SEATS_MAX}));
    patch(
        schemas,
        "RowSpec",
        "aisles_after",
        json!({"items": {"type": "integer", "minimum": 1, "maximum": ROW_SEATS_MAX - 1}}),
    );
    for schema in ["ShowSpec", "NewShow"] {
        patch(
            schemas,
            schema,
            "starts_at_ms",
            json!({"minimum": START_MS_MIN, "maximum": START_MS_MAX}),
        );
        patch(
            schemas,
            schema,
            "prices",
            json!({"minProperties": 1, "maxProperties": CATEGORIES_MAX,
                   "additionalProperties": {"type": "integer", "minimum": 0, "maximum": PRICE_MINOR_MAX}}),
        );
        patch(schemas, schema, "currency", json!({"pattern": "^[A-Z]{3}$"}));
    }
    patch(schemas, "NewShow", "show_id", id.clone());
    patch(
        schemas,
        "Reschedule",
        "starts_at_ms",
        json!({"minimum": START_MS_MIN, "maximum": START_MS_MAX}),
    );
    patch(
        schemas,
        "RegisterRequest",
        "email",
        json!({"maxLength": EMAIL_BYTES_MAX, "pattern": email_pattern()}),
    );
    patch(
        schemas,
        "RegisterRequest",
        "password",
        json!({"minLength": auth::PASSWORD_CHARS_MIN, "maxLength": auth::PASSWORD_BYTES_MAX,
               "pattern": format!("[^{SPACE}]")}),
    );
    patch(schemas, "RegisterRequest", "name", visible_text(USER_NAME_BYTES_MAX));
    patch(schemas, "ReviewRequest", "stars", json!({"minimum": 1, "maximum": 5}));
    patch(schemas, "ReviewRequest", "text", text(0, CATALOG_TEXT_BYTES_MAX));
    patch(
        schemas,
        "VerifyTicketRequest",
        "ticket_code",
        json!({"pattern": format!("^[A-Za-z0-9]{{1,{TICKET_CODE_BYTES_MAX}}}$")}),
    );
    patch(schemas, "BookingRequest", "hold_id", json!({"pattern": "^[0-9]{1,20}-[0-9]{1,20}$"}));
    patch(schemas, "BookingRequest", "payment_token", json!({"minLength": 1, "maxLength": 200}));
    hold_request(schemas, settings);
}

/// Earliest start of a show the catalog takes: year 2000 (catches seconds for milliseconds).
const START_MS_MIN: u64 = 946_684_800_000;
/// Latest: year 2200.
const START_MS_MAX: u64 = 7_258_118_400_000;
/// `YYYY-MM-DD` with a month 01–12 and a day 01–31: the `date` filters of listings.
const DATE_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// A real Gregorian date `YYYY-MM-DD` (`proto::calendar::parse_date`): days within their month,
/// 29 February in leap years only.
const CALENDAR_DATE_PATTERN: &str = "^([0-9]{4}-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|\
    (0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|\
    ([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)$";

/// An email the gateway takes: one `@` with something before it and a `.` after it, no
/// whitespace or control characters.
pub(crate) fn email_pattern() -> String {
    let c = format!("[^@{CONTROL}{SPACE}]");
    format!("^{c}+@{c}*\\.{c}*$")
}

/// Only a theater manager runs theaters: `theaters` is empty for the other roles.
fn role_request(schemas: &mut Map<String, Value>) {
    let Some(role) = schemas.get_mut("RoleRequest") else { return };
    let description = role.get("description").cloned().unwrap_or(Value::Null);
    let theaters = |max: Option<usize>| {
        let mut t = json!({"type": "array", "uniqueItems": true,
                           "items": {"type": "integer", "minimum": 0, "maximum": u64::MAX}});
        if let Some(max) = max {
            t["maxItems"] = json!(max);
        }
        t
    };
    *role = json!({
        "description": description,
        "oneOf": [
            {
                "type": "object",
                "title": "Theater manager",
                "required": ["role"],
                "additionalProperties": false,
                "properties": {
                    "role": {"const": "theater_manager"},
                    "theaters": theaters(Some(proto::limits::CATALOG_LIST_MAX)),
                },
            },
            {
                "type": "object",
                "title": "Customer or admin",
                "required": ["role"],
                "additionalProperties": false,
                "properties": {
                    "role": {"enum": ["customer", "admin"]},
                    "theaters": theaters(Some(0)),
                },
            },
        ],
    });
}

/// `POST /v1/shows/{show_id}/holds` takes either explicit seats or a best-available party.
fn hold_request(schemas: &mut Map<String, Value>, settings: Settings) {
    let Some(hold) = schemas.get_mut("HoldRequest") else { return };
    let ttl = json!({"type": "integer", "minimum": HOLD_TTL_MS_MIN, "maximum": settings.hold_ttl_max_ms,
        "description": "Hold lifetime in ms, at most the gateway's `--hold-ttl-max-ms` (default \
                        900000); default: the cluster's (10 minutes)."});
    let seat = json!({"type": "string", "pattern": "^[A-Za-z]{1,3}[0-9]{1,13}$", "maxLength": 16});
    let description = hold.get("description").cloned().unwrap_or(Value::Null);
    *hold = json!({
        "description": description,
        "oneOf": [
            {
                "type": "object",
                "title": "Explicit seats",
                "required": ["seats"],
                "additionalProperties": false,
                "properties": {
                    "seats": {"type": "array", "items": seat, "minItems": 1, "maxItems": PARTY_SIZE_MAX,
                              "uniqueItems": true, "description": "Seat ids, e.g. `[\"C7\", \"C8\"]`: all or nothing."},
                    "ttl_ms": ttl,
                },
            },
            {
                "type": "object",
                "title": "Best available",
                "required": ["quantity", "category"],
                "additionalProperties": false,
                "properties": {
                    "quantity": {"type": "integer", "minimum": 1, "maximum": PARTY_SIZE_MAX,
                                 "description": "Party size."},
                    "category": {"type": "string", "minLength": 1, "maxLength": 200,
                                 "description": "Seat category of the show."},
                    "ttl_ms": ttl,
                },
            },
        ],
    });
}

/// Query parameters: the bounds their handlers check.
fn constrain_parameters(path: &str, method: &str, operation: &mut Value) {
    let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    let _ = method;
    for parameter in parameters {
        let name = parameter.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let location = parameter.get("in").and_then(Value::as_str).unwrap_or_default().to_owned();
        let constraint = match (location.as_str(), name.as_str()) {
            ("query", "page") => json!({"minimum": 1, "maximum": 100_000}),
            ("query", "per_page") => json!({"minimum": 1, "maximum": 100}),
            ("query", "limit") if path == "/v1/search/suggest" => {
                json!({"minimum": 1, "maximum": 20})
            }
            ("query", "limit") => json!({"minimum": 1, "maximum": 100}),
            ("query", "city" | "genre" | "language") if path == "/v1/search" => text(1, 200),
            ("query", "city" | "genre" | "language" | "q")
                if path != "/v1/search/suggest" && path != "/v1/search" =>
            {
                json!({"minLength": 1, "maxLength": 200})
            }
            ("query", "q") if path == "/v1/search" => text(0, search_sync::QUERY_CHARS_MAX),
            ("query", "q") => visible_text(search_sync::QUERY_CHARS_MAX),
            ("query", "date") => json!({"pattern": DATE_PATTERN}),
            ("query", "consistency") => json!({"enum": ["strong", "fast"]}),
            ("query", "sort") => json!({"enum": ["relevance", "rating", "next_show", "title"]}),
            ("query", "min_rating") => json!({"minimum": 0, "maximum": 5}),
            ("path", "hold_id" | "booking_id") => json!({"pattern": "^[0-9]{1,20}-[0-9]{1,20}$"}),
            ("header", "Idempotency-Key") => json!({"pattern": "^[!-~]{1,64}$"}),
            _ => continue,
        };
        if let Some(schema) = parameter.get_mut("schema") {
            // A nullable `Option<T>` parameter renders as `type: [T, null]`: a query value is
            // never null, so the constraint applies to T.
            if let Some(types) = schema.get("type").and_then(Value::as_array).cloned() {
                let concrete: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
                if concrete.len() == 1 {
                    schema["type"] = concrete[0].clone();
                }
            }
            merge(schema, constraint);
        }
    }
}

/// A problem+json response.
fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

/// Statuses every handler of a kind can answer (see the module docs).
fn add_statuses(path: &str, operation: &mut Value) {
    let secured = operation.get("security").is_some();
    let has_body = operation.get("requestBody").is_some();
    let parameters: Vec<Value> =
        operation.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let has_query = parameters.iter().any(|p| p["in"] == "query");
    let has_path = parameters.iter().any(|p| p["in"] == "path");
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    let mut add = |status: &str, description: &str| {
        responses.entry(status.to_owned()).or_insert_with(|| problem(description));
    };
    let operational = matches!(path, "/healthz" | "/readyz" | "/metrics");
    if operational {
        return;
    }
    if secured {
        add("401", "No, malformed or expired access token (`unauthorized`)");
    }
    if has_body {
        add("400", "The body is not JSON (`malformed-body`)");
        add("413", "The body is over 64 KiB (`payload-too-large`)");
        add("415", "No `Content-Type: application/json` (`malformed-body`)");
        add("422", "A field is missing, of the wrong type or out of bounds (`malformed-body`, `validation-error`)");
    }
    if has_query {
        add("400", "An unknown or malformed query parameter (`malformed-query`)");
        add("422", "A query parameter out of bounds (`validation-error`)");
    }
    if has_path {
        add("404", "No such record (`not-found`)");
    }
    add("429", "Over a rate limit (`rate-limited`, `Retry-After`)");
    add("500", "A bug; logged with the request id (`internal`)");
    add(
        "503",
        "The cluster (or search) could not be reached in time (`unavailable`, `Retry-After`)",
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_calendar_pattern_takes_exactly_the_dates_the_catalog_takes() {
        let pattern = regex::Regex::new(CALENDAR_DATE_PATTERN).unwrap();
        for year in (0..=410).chain(1890..=2110).chain([9999]) {
            for month in 0..=13 {
                for day in 0..=32 {
                    let date = format!("{year:04}-{month:02}-{day:02}");
                    assert_eq!(
                        pattern.is_match(&date),
                        proto::calendar::parse_date(&date).is_some(),
                        "{date}"
                    );
                }
            }
        }
    }

    #[test]
    fn compositions_become_complete_objects() {
        let doc = json!({
            "components": {"schemas": {
                "Spec": {"type": "object", "required": ["a"], "additionalProperties": false,
                         "properties": {"a": {"type": "string"}}},
                "Record": {"allOf": [{"$ref": "#/components/schemas/Spec"},
                                     {"type": "object", "required": ["id"],
                                      "properties": {"id": {"type": "integer"}}}]},
                "Body": {"allOf": [{"$ref": "#/components/schemas/Record"},
                                   {"type": "object", "properties": {"x": {"type": "number"}}}]},
            }},
            "paths": {},
        });
        let doc = exact(doc, Settings::default());
        let body = &doc["components"]["schemas"]["Body"];
        assert_eq!(body["required"], json!(["a", "id"]));
        assert_eq!(body["additionalProperties"], json!(false));
        let names: Vec<&String> = body["properties"].as_object().unwrap().keys().collect();
        assert_eq!(names, ["a", "id", "x"]);
        assert!(doc["components"]["schemas"]["Spec"]["properties"].get("id").is_none());
    }
}
