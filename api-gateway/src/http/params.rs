//! Request and response shapes every area of the API shares: request ids for proposals, path
//! ids, pagination, bounded query parameters. (The router itself is in the parent module.)

use rand::Rng;

use crate::error::ApiError;

/// A fresh request id for a proposal that no client key identifies.
pub(crate) fn request_id() -> String {
    format!("rq-{:032x}", rand::rng().random::<u128>())
}

/// Parses an id from a path; one that does not parse names nothing, so it is not found.
pub(crate) fn parse_id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound(what))
}

/// `?page=&per_page=` of every list endpoint.
#[derive(Debug, Clone, Copy, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1..=100 (default 20).
    pub per_page: Option<u32>,
}

impl PageParams {
    /// The state machine's offset/limit.
    ///
    /// # Errors
    /// Out-of-range values.
    pub fn page(&self) -> Result<proto::catalog::Page, ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 || page > 100_000 {
            return Err(ApiError::Validation("page must be 1..=100000".into()));
        }
        if !(1..=100).contains(&per_page) {
            return Err(ApiError::Validation("per_page must be 1..=100".into()));
        }
        Ok(proto::catalog::Page { offset: (page - 1).saturating_mul(per_page), limit: per_page })
    }
}

/// A page of a list, as every list endpoint answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PageBody<T> {
    /// The items.
    pub items: Vec<T>,
    /// Matching items in total.
    pub total: u64,
    /// This page (1-based).
    pub page: u32,
    /// Items per page.
    pub per_page: u32,
}

impl<T> PageBody<T> {
    /// Converts a state-machine page.
    pub fn from_paged<U>(paged: proto::catalog::Paged<U>, f: impl FnMut(U) -> T) -> Self {
        let per_page = paged.limit.max(1);
        PageBody {
            items: paged.items.into_iter().map(f).collect(),
            total: paged.total,
            page: paged.offset / per_page + 1,
            per_page,
        }
    }
}

/// A short, bounded query-string value (filters, dates).
pub(crate) fn check_param(name: &str, value: &Option<String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > 200 => {
            Err(ApiError::Validation(format!("{name} must be 1..=200 characters")))
        }
        _ => Ok(()),
    }
}
