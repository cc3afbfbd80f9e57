//! `--restore-from DIR`: builds this node's database from an online backup before the node
//! opens it (docs/operations.md, "Backup and restore").
//!
//! Each node of the new cluster is started once with the flag, with its id and address from
//! the backup. It checks the backup's files against the manifest (`ctl::backup::verified`),
//! picks for every group the most advanced replica the backup holds, and writes that replica
//! into a fresh database for each group this node hosts (`raft_store::restore` says why this,
//! and not the checkpoints as they are, is a correct restore). Every node makes the same
//! choices from the same backup, so the replicas of a group start identical.
//!
//! All or nothing: the database is written under `<data-dir>/db.restoring` and renamed to
//! `<data-dir>/db` only when complete, with a record of the backup it came from. A data dir
//! that already holds a database is refused, unless that database was restored from the same
//! backup: then the node just starts, so the flag may stay set across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use raft_store::restore::{self, Checkpoint};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// The record, inside a restored database's directory, of the backup it came from.
const RESTORED_FROM: &str = "RESTORED-FROM.json";

/// What [`RESTORED_FROM`] holds.
#[derive(Debug, Serialize, Deserialize)]
struct Restored {
    /// The backup's name.
    backup: String,
    /// When that backup started, Unix ms.
    started_at_ms: u64,
    /// Each group restored here: the node whose replica was copied, and its last log index.
    groups: BTreeMap<u64, (u64, u64)>,
}

/// Restores `config.data_dir` from the backup at `from`, unless it was already restored from
/// that backup.
///
/// # Errors
/// The data dir holds another database, the backup is damaged or incomplete, this node's
/// address differs from the one the backup recorded for its id, or writing failed.
pub fn restore(config: &Config, from: &Path) -> anyhow::Result<()> {
    let db_path = config.data_dir.join("db");
    let manifest_path = from.join(ctl::backup::MANIFEST);
    let name = {
        let bytes = std::fs::read(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        let manifest: ctl::backup::Manifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        manifest.name
    };
    if let Some(previous) = already_restored(&db_path)? {
        if previous.backup == name {
            tracing::info!(backup = %name, "data dir already restored from this backup");
            return Ok(());
        }
        bail!(
            "{} was restored from backup {}, not {name}: refusing to overwrite it",
            db_path.display(),
            previous.backup
        );
    }

    let (manifest, present) = ctl::backup::verified(from)?;
    let me = config.id;
    match manifest.nodes.iter().find(|n| n.node_id == me) {
        Some(entry) if entry.addr != config.advertised() => bail!(
            "the backup recorded node {me} at {}, this node is at {}: a restored node must run \
             at its original address (the groups' memberships name it), so start it with \
             --grpc-addr/--advertise-addr {}",
            entry.addr,
            config.advertised(),
            entry.addr
        ),
        Some(_) => {}
        None => tracing::warn!(
            node = me,
            "this node is not in the backup's manifest: it gets the groups whose memberships \
             name it, and must run at the address they record"
        ),
    }

    let staging = config.data_dir.join("db.restoring");
    let log_dir = config.data_dir.join("restore-logs");
    for dir in [&staging, &log_dir] {
        if dir.exists() {
            // Left by an interrupted restore: start over.
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(&log_dir)?;
    let mut checkpoints = BTreeMap::new();
    let mut replicas = BTreeMap::new();
    for id in &present {
        let dir = ctl::backup::node_dir(from, *id);
        let checkpoint = Checkpoint::open(&dir, &log_dir)
            .with_context(|| format!("opening the checkpoint {}", dir.display()))?;
        replicas.insert(*id, checkpoint.replicas()?);
        checkpoints.insert(*id, checkpoint);
    }
    let chosen = restore::choose(&replicas);
    let mut plan = Vec::new();
    for (group, choice) in &chosen {
        let recorded = manifest.groups.get(&group.0);
        if recorded.is_some_and(|r| *r != choice.members) {
            tracing::warn!(
                %group,
                map = ?recorded,
                membership = ?choice.members,
                "the shard map and the Raft membership differ; the membership decides"
            );
        }
        if !choice.members.contains(&me) {
            continue;
        }
        anyhow::ensure!(
            choice.last_log_id.is_some(),
            "group {group}: no replica in the backup holds any of its log"
        );
        tracing::info!(
            %group,
            from_node = choice.source,
            last_log_index = choice.last_log_id.map_or(0, |id| id.index),
            replicas_in_backup = choice.held,
            "restoring group"
        );
        plan.push((*group, &checkpoints[&choice.source], choice));
    }
    anyhow::ensure!(
        !plan.is_empty() || manifest.nodes.iter().any(|n| n.node_id == me),
        "node {me} hosts no group in this backup and is not in its manifest: wrong --id?"
    );
    restore::write(&staging, me, &plan).context("writing the restored database")?;
    let record = Restored {
        backup: manifest.name.clone(),
        started_at_ms: manifest.started_at_ms,
        groups: plan
            .iter()
            .map(|(group, _, choice)| {
                (group.0, (choice.source, choice.last_log_id.map_or(0, |id| id.index)))
            })
            .collect(),
    };
    let restored = plan.len();
    drop(plan);
    drop(checkpoints);
    write_synced(&staging.join(RESTORED_FROM), &serde_json::to_vec_pretty(&record)?)?;
    sync_dir(&staging)?;
    if db_path.exists() {
        // Only an empty directory gets here (`already_restored` refused anything else).
        std::fs::remove_dir(&db_path).with_context(|| format!("removing {}", db_path.display()))?;
    }
    std::fs::rename(&staging, &db_path)
        .with_context(|| format!("renaming {} to {}", staging.display(), db_path.display()))?;
    sync_dir(&config.data_dir)?;
    std::fs::remove_dir_all(&log_dir).ok();
    tracing::info!(backup = %manifest.name, groups = restored, "restore complete");
    Ok(())
}

/// What a restored database at `db_path` was restored from; `None` if there is no database.
///
/// # Errors
/// A database that was not restored (or whose record is unreadable) is there.
fn already_restored(db_path: &Path) -> anyhow::Result<Option<Restored>> {
    let empty = match std::fs::read_dir(db_path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", db_path.display())),
    };
    if empty {
        return Ok(None);
    }
    let record: PathBuf = db_path.join(RESTORED_FROM);
    let bytes = std::fs::read(&record).map_err(|_| {
        anyhow::anyhow!(
            "{} already holds a database: refusing to restore over it (give a new --data-dir)",
            db_path.display()
        )
    })?;
    Ok(Some(
        serde_json::from_slice(&bytes).with_context(|| format!("reading {}", record.display()))?,
    ))
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)?.sync_all().with_context(|| format!("syncing {}", dir.display()))
}
