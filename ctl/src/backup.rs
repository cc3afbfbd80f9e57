//! `marqueectl backup` and `verify-backup` (docs/operations.md, "Backup and restore").
//!
//! A backup is one RocksDB checkpoint per node (`Cluster.Backup`, taken while bookings go on)
//! plus a manifest: which node wrote which files (with SHA-256), and what each group's replicas
//! had applied. It counts only if every group has a majority of its replicas in it: then every
//! booking acknowledged before the backup started is in it (a committed entry is on a majority
//! of logs, and each checkpoint is taken later).
//!
//! Restoring is `marquee-node --restore-from DIR` (`node::restore`), which reads the manifest
//! and checks the files with [`verified`]. Copying the checkpoints back as data directories is
//! NOT a restore: the replicas of a group are checkpointed at different log positions, and
//! openraft resumes a leader's term on restart without an election, so a restored leader can be
//! behind a restored follower that already applied more (docs/operations.md, "Backup and
//! restore").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::meta::NodeState;
use proto::pb::{BackupFile, BackupRequest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Admin, CtlError, Result};

/// Time one node may take to checkpoint and checksum its database.
const NODE_BACKUP_TIMEOUT: Duration = Duration::from_secs(600);
/// The manifest's file name inside a backup directory.
pub const MANIFEST: &str = "manifest.json";

/// One file of a node's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the node's directory.
    pub path: String,
    /// Size.
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// One node's part of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node.
    pub node_id: u64,
    /// Its gRPC address (a restored node must run at it again).
    pub addr: String,
    /// Where the node wrote its checkpoint, on its own filesystem.
    pub source_dir: String,
    /// Whether the checkpoint was copied into the backup directory (`node-<id>/`); if not,
    /// copy `source_dir` from that node there before restoring.
    pub copied: bool,
    /// The checkpoint's files.
    pub files: Vec<FileEntry>,
    /// Applied index of each group it hosts, read just before its checkpoint (the checkpoint
    /// holds at least this much).
    pub applied: BTreeMap<u64, u64>,
}

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The backup's name.
    pub name: String,
    /// When `marqueectl backup` started, Unix ms (every booking acknowledged before is in it).
    pub started_at_ms: u64,
    /// Shard-map version then.
    pub map_version: u64,
    /// Each group's replicas as the map recorded them.
    pub groups: BTreeMap<u64, BTreeSet<u64>>,
    /// The nodes' checkpoints.
    pub nodes: Vec<NodeEntry>,
}

fn io(what: &str, e: &std::io::Error) -> CtlError {
    CtlError::Invalid(format!("{what}: {e}"))
}

fn unix_ms() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
}

/// Checks `dir/<file>` against the manifest's size and SHA-256.
fn verify(dir: &Path, files: &[FileEntry]) -> Result<()> {
    for file in files {
        let path = dir.join(&file.path);
        // Streamed: table files can be far larger than memory should hold at once.
        let mut hasher = Sha256::new();
        let bytes = std::fs::File::open(&path)
            .and_then(|mut f| std::io::copy(&mut f, &mut hasher))
            .map_err(|e| io(&path.display().to_string(), &e))?;
        let sha = format!("{:x}", hasher.finalize());
        if bytes != file.bytes || sha != file.sha256 {
            return Err(CtlError::Invalid(format!(
                "{} does not match the manifest (size or SHA-256): the backup is damaged",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Copies `files` from `from` to `to` (created), then verifies the copies.
fn copy_files(from: &Path, to: &Path, files: &[FileEntry]) -> Result<()> {
    for file in files {
        let (source, target) = (from.join(&file.path), to.join(&file.path));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(&parent.display().to_string(), &e))?;
        }
        std::fs::copy(&source, &target).map_err(|e| io(&source.display().to_string(), &e))?;
    }
    verify(to, files)
}

impl Admin {
    /// Takes a backup named `name`: a checkpoint on every registered node that answers, copied
    /// into `to` when the node's directory is reachable from here (same machine or shared
    /// filesystem), and `to/manifest.json`.
    ///
    /// # Errors
    /// `to` exists and is not empty, a group has no majority of its replicas in the backup, or
    /// files could not be written.
    pub async fn backup(&self, name: &str, to: &Path) -> Result<Manifest> {
        if to.read_dir().is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(CtlError::Invalid(format!("{} exists and is not empty", to.display())));
        }
        let started_at_ms = unix_ms();
        let topology = self.topology().await?;
        let mut nodes = Vec::new();
        for (id, info) in topology.nodes.iter().filter(|(_, n)| n.state != NodeState::Removed) {
            let mut client = match self.cluster(&info.addr) {
                Ok(client) => client,
                Err(e) => {
                    self.say(&format!("node {id}: not backed up ({e})"));
                    continue;
                }
            };
            let mut request = tonic::Request::new(BackupRequest { name: name.to_owned() });
            request.set_timeout(NODE_BACKUP_TIMEOUT);
            let reply = match client.backup(request).await {
                Ok(reply) => reply.into_inner(),
                Err(status) => {
                    self.say(&format!("node {id}: not backed up ({})", status.message()));
                    continue;
                }
            };
            let files: Vec<FileEntry> = reply
                .files
                .iter()
                .map(|f: &BackupFile| FileEntry {
                    path: f.path.clone(),
                    bytes: f.bytes,
                    sha256: f.sha256.clone(),
                })
                .collect();
            let source = PathBuf::from(&reply.dir);
            let copied = if source.is_dir() {
                copy_files(&source, &node_dir(to, *id), &files)?;
                true
            } else {
                false
            };
            self.say(&format!(
                "node {id}: checkpoint of {} files at {}{}",
                files.len(),
                reply.dir,
                if copied { ", copied and verified" } else { " (on that node: copy it here)" }
            ));
            nodes.push(NodeEntry {
                node_id: *id,
                addr: info.addr.clone(),
                source_dir: reply.dir,
                copied,
                files,
                applied: reply.groups.iter().map(|g| (g.group_id, g.applied_index)).collect(),
            });
        }
        let groups: BTreeMap<u64, BTreeSet<u64>> =
            topology.groups.iter().map(|(id, g)| (id.0, g.replicas.clone())).collect();
        for (group, replicas) in &groups {
            let held = nodes.iter().filter(|n| n.applied.contains_key(group)).count();
            if held * 2 <= replicas.len() {
                return Err(CtlError::Unavailable(format!(
                    "group {group}: only {held} of its {} replicas are in the backup; a majority \
                     is needed (bring its nodes back and take the backup again)",
                    replicas.len()
                )));
            }
        }
        let manifest = Manifest {
            name: name.to_owned(),
            started_at_ms,
            map_version: topology.version,
            groups,
            nodes,
        };
        std::fs::create_dir_all(to).map_err(|e| io(&to.display().to_string(), &e))?;
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| CtlError::Invalid(format!("manifest: {e}")))?;
        let path = to.join(MANIFEST);
        std::fs::write(&path, json).map_err(|e| io(&path.display().to_string(), &e))?;
        self.say(&format!("backup {name}: manifest at {}", path.display()));
        Ok(manifest)
    }
}

/// Where a backup directory holds node `id`'s checkpoint.
pub fn node_dir(from: &Path, id: u64) -> PathBuf {
    from.join(format!("node-{id}"))
}

/// Verifies a backup directory: the manifest reads, every node checkpoint present in it
/// (`node-<id>/`, copied by `marqueectl backup` or by hand) matches its size and SHA-256, a
/// checkpoint recorded as copied is present, and every group has a majority of its replicas
/// among the present checkpoints. Returns the manifest and the nodes whose checkpoints are
/// present.
///
/// # Errors
/// No manifest, a missing group majority, or a missing or damaged file.
pub fn verified(from: &Path) -> Result<(Manifest, BTreeSet<u64>)> {
    let path = from.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| io(&path.display().to_string(), &e))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| CtlError::Invalid(format!("{}: {e}", path.display())))?;
    let mut present = BTreeSet::new();
    for node in &manifest.nodes {
        let dir = node_dir(from, node.node_id);
        if !node.copied && !dir.is_dir() {
            continue;
        }
        verify(&dir, &node.files)?;
        present.insert(node.node_id);
    }
    for (group, replicas) in &manifest.groups {
        let held = manifest
            .nodes
            .iter()
            .filter(|n| present.contains(&n.node_id) && n.applied.contains_key(group))
            .count();
        if held * 2 <= replicas.len() {
            return Err(CtlError::Invalid(format!(
                "group {group}: only {held} of its {} replicas are in the backup directory \
                 (copy the missing node-<id>/ checkpoints into it)",
                replicas.len()
            )));
        }
    }
    Ok((manifest, present))
}

/// [`verified`], returning the manifest.
///
/// # Errors
/// See [`verified`].
pub fn verify_backup(from: &Path) -> Result<Manifest> {
    verified(from).map(|(manifest, _)| manifest)
}
