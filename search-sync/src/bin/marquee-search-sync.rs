//! `marquee-search-sync`: keeps a Meilisearch index in step with the catalog.
//!
//! Tails the meta group's change feed from a durable cursor (a file, replaced atomically after
//! every indexed batch), re-reads the affected movies and writes them to Meilisearch, waiting
//! on every task. Run one per Meilisearch index, and start the gateways with
//! `--search meilisearch --search-sync false`. `--rebuild` discards the cursor: the index is
//! cleared and rebuilt from the catalog, then the feed is followed from there. (The embedded
//! backend needs no separate worker: each gateway feeds its own.)

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use search_sync::cluster_source::ClusterCatalogSource;
use search_sync::sync::{FileCursor, Syncer};

/// Keeps a Meilisearch index in step with a Marquee catalog.
#[derive(Debug, Parser)]
#[command(name = "marquee-search-sync", version)]
struct Args {
    /// gRPC addresses of cluster nodes (at least one meta replica), comma separated.
    #[arg(long, env = "MARQUEE_NODES", value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Meilisearch base URL.
    #[arg(long, env = "MEILI_URL")]
    meili_url: String,
    /// Meilisearch API key.
    #[arg(long, env = "MEILI_MASTER_KEY", hide_env_values = true)]
    meili_key: Option<String>,
    /// Index name.
    #[arg(long, env = "MARQUEE_MEILI_INDEX", default_value = "movies")]
    meili_index: String,
    /// File holding the last indexed change (created if absent).
    #[arg(long, env = "MARQUEE_SEARCH_CURSOR", default_value = "marquee-search.cursor")]
    cursor_file: PathBuf,
    /// Forget the cursor and rebuild the index from scratch.
    #[arg(long)]
    rebuild: bool,
    /// Serve Prometheus metrics (`marquee_search_sync{field}`: indexed_seq, head_seq, lag,
    /// rebuilds, errors) on this address, e.g. `127.0.0.1:9190`.
    #[arg(long, env = "MARQUEE_SEARCH_SYNC_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

/// `/metrics` of the worker: its progress as gauges.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    status: Arc<search_sync::sync::SyncStatus>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let status = Arc::clone(&status);
            async move {
                let fields = [
                    ("indexed_seq", status.indexed_seq.load(Relaxed)),
                    ("head_seq", status.head_seq.load(Relaxed)),
                    ("lag", status.lag()),
                    ("rebuilds", status.rebuilds.load(Relaxed)),
                    ("errors", status.errors.load(Relaxed)),
                ];
                let mut text = String::from(
                    "# HELP marquee_search_sync Search sync worker progress\n# TYPE marquee_search_sync gauge\n",
                );
                for (field, value) in fields {
                    text.push_str(&format!("marquee_search_sync{{field=\"{field}\"}} {value}\n"));
                }
                text
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    telemetry::init_logging("info");
    let args = Args::parse();
    telemetry::run_until_signal("marquee-search-sync", |shutdown| async move {
        if args.rebuild {
            match std::fs::remove_file(&args.cursor_file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let index = search_sync::meili::MeiliIndex::new(
            &args.meili_url,
            args.meili_key.as_deref(),
            &args.meili_index,
        )?;
        let cluster = client::ClusterClient::new(args.nodes);
        let source = ClusterCatalogSource::new(cluster);
        let syncer =
            Syncer::new(Arc::new(index), Arc::new(source), Box::new(FileCursor(args.cursor_file)));
        let status = syncer.status();
        let metrics = args
            .metrics_addr
            .map(|addr| tokio::spawn(serve_metrics(addr, Arc::clone(&status), shutdown.clone())));
        let progress = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                tracing::info!(
                    indexed = status.indexed_seq.load(std::sync::atomic::Ordering::Relaxed),
                    lag = status.lag(),
                    "search sync progress"
                );
            }
        });
        syncer.run(shutdown.clone()).await;
        progress.abort();
        if let Some(metrics) = metrics {
            shutdown.cancel();
            metrics.await??;
        }
        Ok(())
    })
    .await
}
