//! Online backup of a node (docs/operations.md, "Backup and restore"): a RocksDB checkpoint of
//! the node's whole database, every replica it hosts as of one instant, written under
//! `--backup-dir` while the node keeps serving, with each file's SHA-256 for the manifest
//! `marqueectl backup` writes.
//!
//! Why this is a consistent backup of the cluster: a booking acknowledged before the backup
//! started is committed, so it is in the log of a majority of its group's replicas, and a Raft
//! log never loses a committed entry; every node's checkpoint is taken after that, so a majority
//! of the restored replicas hold it and any leader they elect has it. Each group comes back at a
//! point in time of its own (at least the applied index recorded in the manifest); groups are
//! not cut at one global instant (docs/operations.md says what that means for cross-group
//! effects).

use std::path::{Path, PathBuf};

use proto::pb::{BackupFile, BackupReply, GroupStatus};
use sha2::{Digest, Sha256};

use crate::host::Host;

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The name is not a plain file name.
    #[error("backup name must be 1..=64 of [A-Za-z0-9._-], not starting with a dot")]
    BadName,
    /// A backup of that name exists on this node.
    #[error("a backup named {0} exists on this node")]
    Exists(String),
    /// The checkpoint or a checksum failed.
    #[error("backup failed: {0}")]
    Failed(String),
}

/// Whether `name` can name a backup directory.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Checkpoints the node's database into `<backup-dir>/<name>/node-<id>` and checksums it.
/// `statuses` reads the hosted groups' statuses just before the checkpoint.
///
/// # Errors
/// See [`BackupError`].
pub async fn take(
    host: &Host,
    name: &str,
    statuses: impl FnOnce() -> Vec<GroupStatus>,
) -> Result<BackupReply, BackupError> {
    if !valid_name(name) {
        return Err(BackupError::BadName);
    }
    let node_id = host.config.id;
    let root =
        host.config.backup_dir.clone().unwrap_or_else(|| host.config.data_dir.join("backups"));
    let dir = root.join(name).join(format!("node-{node_id}"));
    if dir.exists() {
        return Err(BackupError::Exists(name.to_owned()));
    }
    // Statuses first: applied indexes only grow, so the checkpoint holds at least these.
    let groups = statuses();
    let db = host.db.clone();
    let target = dir.clone();
    let files = tokio::task::spawn_blocking(move || {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BackupError::Failed(e.to_string()))?;
        }
        db.checkpoint(&target).map_err(|e| BackupError::Failed(e.to_string()))?;
        checksums(&target)
    })
    .await
    .map_err(|e| BackupError::Failed(e.to_string()))??;
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    tracing::info!(dir = %dir.display(), files = files.len(), "backup checkpoint written");
    Ok(BackupReply { node_id, dir: dir.display().to_string(), groups, files })
}

/// Every file under `dir` (relative path, size, SHA-256), sorted by path.
///
/// # Errors
/// A file could not be read.
pub fn checksums(dir: &Path) -> Result<Vec<BackupFile>, BackupError> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|e| BackupError::Failed(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| BackupError::Failed(e.to_string()))?.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            // Streamed: table files can be far larger than memory should hold at once.
            let failed =
                |e: std::io::Error| BackupError::Failed(format!("{}: {e}", path.display()));
            let mut hasher = Sha256::new();
            let mut file = std::fs::File::open(&path).map_err(failed)?;
            let bytes = std::io::copy(&mut file, &mut hasher).map_err(failed)?;
            let relative = path.strip_prefix(dir).unwrap_or(&path).display().to_string();
            files.push(BackupFile {
                path: relative,
                bytes,
                sha256: format!("{:x}", hasher.finalize()),
            });
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
