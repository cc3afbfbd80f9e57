//! Which backend a process searches with, chosen by flag: the gateway's `--search`.

use std::sync::Arc;

use crate::embedded::EmbeddedIndex;
use crate::meili::MeiliIndex;
use crate::{SearchError, SearchIndex};

/// Which search backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// In-memory tantivy index in this process, fed by its own sync worker.
    Embedded,
    /// A Meilisearch server (`--meili-url`).
    Meilisearch,
    /// No search: `/v1/search` answers 503.
    Off,
}

/// Opens the configured backend.
///
/// # Errors
/// The embedded index could not be created, or the Meilisearch URL is unusable. An unreachable
/// Meilisearch is not an error here: search answers 503 until the sync worker reaches it.
pub fn open_backend(
    backend: Backend,
    meili_url: Option<&str>,
    meili_key: Option<&str>,
    meili_index: &str,
) -> Result<Option<Arc<dyn SearchIndex>>, SearchError> {
    Ok(match backend {
        Backend::Off => None,
        Backend::Embedded => Some(Arc::new(EmbeddedIndex::new()?)),
        Backend::Meilisearch => {
            let url = meili_url.ok_or_else(|| {
                SearchError::Config("--search meilisearch needs --meili-url".into())
            })?;
            Some(Arc::new(MeiliIndex::new(url, meili_key, meili_index)?))
        }
    })
}
