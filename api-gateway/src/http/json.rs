//! The JSON body extractor every handler uses. It differs from `axum::Json` in one way: a number
//! with no fractional part is an integer wherever an integer is expected (`2.0` for `stars`),
//! as JSON Schema, and so the OpenAPI document, says it is; serde alone refuses `2.0` for a
//! `u8`. Errors are the gateway's problem+json: 400 (syntax), 413, 415, 422 (types).

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::{Number, Value};

use crate::error::ApiError;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(mut value) = axum::Json::<Value>::from_request(request, state).await?;
        integral_floats_as_integers(&mut value);
        serde_json::from_value(value).map(JsonBody).map_err(|e| {
            ApiError::MalformedBody(axum::http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        })
    }
}

/// Rewrites every float with no fractional part that fits an `i64` or `u64` as that integer.
pub fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                // Casts saturate; the range checks keep only exact conversions.
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                let integer = if f >= 0.0 && f < u64::MAX as f64 {
                    Some(Number::from(f as u64))
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    Some(Number::from(f as i64))
                } else {
                    None
                };
                if let Some(integer) = integer {
                    *n = integer;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integral_floats_become_integers_and_others_stay() {
        let mut v = json!({"a": 2.0, "b": [-3.0, 1.5], "c": {"d": 1e3}, "e": "2.0", "f": 7});
        integral_floats_as_integers(&mut v);
        assert_eq!(v, json!({"a": 2, "b": [-3, 1.5], "c": {"d": 1000}, "e": "2.0", "f": 7}));
        let mut huge = json!(1e300);
        integral_floats_as_integers(&mut huge);
        assert!(huge.is_f64(), "out of range stays a float (and fails an integer field)");
    }
}
