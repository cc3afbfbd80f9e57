//! What a node does when its disk fails (docs/reliability.md, "Disk faults").
//!
//! The group-commit writer makes the first failed write final (`raft_store::Db::failure`):
//! nothing more is written, every write queued behind it completes with an error, so openraft
//! never hears that an entry or a vote is durable when it is not, and the replicas on this node
//! stop (their groups carry on with the other replicas). This module is the rest of the
//! policy: it stops writing on its own when the disk is almost full (`--storage-min-free-mb`,
//! before RocksDB runs out of space in the middle of a write), notices a failure, says why (an
//! error log line, `marquee_node_storage_failed`, `/readyz` answering 503 with the error), and
//! once the data directory can take a probe write
//! of `--storage-restart-free-mb` again (space was freed, the device came back), restarts the
//! node in place: the process re-executes itself with the same arguments, which reopens
//! RocksDB from what is durable, exactly as after a crash. The replicas then catch up from
//! their leaders. Retrying the failed write in the same process is not an option: after a
//! failed fsync the kernel may have dropped the dirty pages, and RocksDB refuses writes after
//! such an error anyway.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raft_store::Db;
use tokio_util::sync::CancellationToken;

/// How often the writer's state is checked, and the disk probed once it failed.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_FILE: &str = ".storage-probe";

/// When the node stops writing and when it restarts.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Stop writing below this many MiB available (0: never on this ground).
    pub min_free_mb: u64,
    /// After a failure, restart once this many MiB can be written (0: never).
    pub restart_free_mb: u64,
}

/// Watches `db` until `shutdown`: stops its writing when `data_dir`'s filesystem has less
/// than `min_free_mb` available; after a storage failure, probes `data_dir` and restarts the
/// process once a probe of `restart_free_mb` MiB succeeds.
pub async fn watch(db: Db, data_dir: PathBuf, settings: Settings, shutdown: CancellationToken) {
    let Settings { min_free_mb, restart_free_mb } = settings;
    let failure = loop {
        if min_free_mb > 0 {
            // statvfs can hang on exactly the failing device this watches: off the runtime.
            let dir = data_dir.clone();
            let disk = tokio::task::spawn_blocking(move || fs4::statvfs(dir)).await;
            if let Ok(Ok(disk)) = disk {
                let available_mb = disk.available_space() / (1024 * 1024);
                if available_mb < min_free_mb {
                    db.fail(format!(
                        "disk almost full: {available_mb} MiB available, below \
                         --storage-min-free-mb {min_free_mb}"
                    ));
                }
            }
        }
        if let Some(failure) = db.failure() {
            break failure.to_owned();
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
    };
    if restart_free_mb == 0 {
        tracing::error!(%failure, "storage failed: this node acknowledges nothing more and stays \
            unready until it is restarted (--storage-restart-free-mb 0)");
        return;
    }
    tracing::error!(%failure, restart_free_mb, "storage failed: this node acknowledges nothing \
        more; it restarts itself once {restart_free_mb} MiB can be written to its data directory");
    let mut attempts: u64 = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
        }
        let dir = data_dir.clone();
        let probe = tokio::task::spawn_blocking(move || probe(&dir, restart_free_mb)).await;
        match probe {
            Ok(Ok(())) => break,
            Ok(Err(e)) => {
                attempts += 1;
                // Once a minute is enough to say it is still waiting.
                if attempts % 30 == 1 {
                    tracing::warn!(error = %e, "storage still unusable; waiting to restart");
                }
            }
            Err(e) => tracing::warn!(error = %e, "storage probe task failed"),
        }
    }
    tracing::warn!("storage usable again: restarting this node to reopen its database");
    restart();
}

/// Writes and syncs `mb` MiB in `dir`, then removes the file.
fn probe(dir: &Path, mb: u64) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..mb {
            file.write_all(&chunk)?;
        }
        file.sync_all()
    })();
    // Removing it frees the space whether or not the probe succeeded.
    let removed = std::fs::remove_file(&path);
    result?;
    removed
}

/// Re-executes this program with its arguments and environment (same pid, same sockets'
/// ports: the listening sockets are close-on-exec, as are RocksDB's files and lock). Returns
/// only if that fails, by exiting.
fn restart() -> ! {
    use std::os::unix::process::CommandExt;
    let error = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec(),
        Err(e) => e,
    };
    tracing::error!(error = %error, "could not restart in place: exiting for the supervisor");
    std::process::exit(75)
}
