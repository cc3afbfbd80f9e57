//! `marqueectl`: operator CLI for a Marquee cluster (status, nodes, replica placement,
//! leadership). See `docs/operations.md`.

use clap::{Parser, Subcommand};
use ctl::Admin;
use proto::catalog::{CatalogCommand, CatalogReply, Role};
use proto::command::{Rejection, Reply};
use proto::meta::{MetaCommand, MetaReply};
use proto::GroupId;

/// Operate a Marquee cluster.
#[derive(Debug, Parser)]
#[command(name = "marqueectl", version, about)]
struct Cli {
    /// gRPC addresses of cluster nodes to start from (at least one meta replica), comma
    /// separated.
    #[arg(
        long,
        env = "MARQUEE_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
    )]
    nodes: Vec<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RepairAction {
    Pause,
    Resume,
    Status,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Nodes, groups, replicas, leaders, log positions and replication lag.
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Register a node (a node started with `--join` registers itself).
    AddNode {
        /// The node's id.
        #[arg(long)]
        id: u64,
        /// Its gRPC address.
        #[arg(long)]
        addr: String,
    },
    /// Move every replica off a node; with `--remove`, then retire it.
    Drain {
        /// The node.
        #[arg(long)]
        node: u64,
        /// Mark the node removed once empty (it can then be stopped for good).
        #[arg(long)]
        remove: bool,
    },
    /// Retire an empty node.
    RemoveNode {
        /// The node.
        #[arg(long)]
        node: u64,
    },
    /// Move one replica of a group from one node to another.
    Move {
        /// The group.
        #[arg(long)]
        group: u64,
        /// Node giving up its replica.
        #[arg(long)]
        from: u64,
        /// Node receiving it.
        #[arg(long)]
        to: u64,
    },
    /// Make a node the leader of a group.
    TransferLeader {
        /// The group.
        #[arg(long)]
        group: u64,
        /// The voter to lead it.
        #[arg(long)]
        to: u64,
    },
    /// Spread group leaders evenly over the active nodes (the meta leader also does this by
    /// itself, one transfer per placement tick).
    BalanceLeaders,
    /// Move every leadership of a node to other voters before stopping it (a node does this
    /// by itself on SIGTERM; this is the manual form, e.g. for a Kubernetes preStop hook).
    HandOff {
        /// The node (default: the one at the first `--nodes` address, e.g. `127.0.0.1:7001` in
        /// a Kubernetes preStop hook).
        #[arg(long)]
        node: Option<u64>,
    },
    /// Back up every group online: a checkpoint on every node, copied into `--to` (when the
    /// nodes' directories are reachable from here), with a manifest and checksums.
    Backup {
        /// A name for the backup ([A-Za-z0-9._-]).
        #[arg(long)]
        name: String,
        /// An empty or new directory.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Check a backup directory: manifest, a majority of every group, file sizes and SHA-256.
    VerifyBackup {
        /// The backup directory (with manifest.json and node-<id>/).
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Pause, resume or show the placement loop's self-repair (re-creating the replicas of a
    /// node unreachable for longer than the nodes' `--repair-after-s`).
    Repair {
        /// pause, resume or status.
        action: RepairAction,
    },
    /// Even out replicas over the active nodes, then balance leaders.
    Rebalance,
    /// Create an account directly in the meta group: how the first admin is made. The
    /// password is read from `MARQUEE_PASSWORD`, else from the first line of stdin.
    CreateUser {
        /// Login email (stored lowercased).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// `customer`, `theater_manager` or `admin`.
        #[arg(long, default_value = "customer", value_parser = parse_role)]
        role: Role,
        /// Theaters a `theater_manager` runs (comma separated ids).
        #[arg(long, value_delimiter = ',')]
        theaters: Vec<u64>,
        /// Succeed without changes when the email is already registered.
        #[arg(long)]
        exists_ok: bool,
    },
    /// Delete a node's leftover replica of a group (after a move whose old node was down).
    DeleteReplica {
        /// The node.
        #[arg(long)]
        node: u64,
        /// The group.
        #[arg(long)]
        group: u64,
        /// Delete even if the replica still counts itself a voter (check `status` first).
        #[arg(long)]
        force: bool,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let first = cli.nodes.first().cloned().unwrap_or_default();
    let admin = Admin::new(cli.nodes, |line| eprintln!("{line}"));
    let command = match cli.command {
        Cmd::HandOff { node: None } => match admin.node_id_at(&first).await {
            Ok(id) => Cmd::HandOff { node: Some(id) },
            Err(e) => {
                eprintln!("marqueectl: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        other => other,
    };
    match run(&admin, command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("marqueectl: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(admin: &Admin, command: Cmd) -> anyhow::Result<()> {
    match command {
        Cmd::Status { json } => {
            let view = admin.view().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ctl::view::to_json(&view))?);
            } else {
                print!("{}", ctl::view::render(&view));
            }
        }
        Cmd::AddNode { id, addr } => admin.add_node(id, &addr).await?,
        Cmd::Drain { node, remove } => admin.drain(node, remove).await?,
        Cmd::RemoveNode { node } => {
            admin
                .meta(proto::meta::MetaCommand::SetNodeState {
                    node_id: node,
                    state: proto::meta::NodeState::Removed,
                })
                .await?;
            eprintln!("node {node} removed");
        }
        Cmd::Move { group, from, to } => admin.move_replica(GroupId(group), from, to).await?,
        Cmd::TransferLeader { group, to } => admin.transfer_leader(GroupId(group), to).await?,
        Cmd::BalanceLeaders => admin.balance_leaders().await?,
        Cmd::Backup { name, to } => {
            admin.backup(&name, &to).await?;
        }
        Cmd::VerifyBackup { from } => {
            let manifest = ctl::backup::verify_backup(&from)?;
            println!(
                "backup {}: {} groups, {} nodes, every copied file matches the manifest",
                manifest.name,
                manifest.groups.len(),
                manifest.nodes.len()
            );
        }
        Cmd::HandOff { node } => {
            admin.hand_off(node.unwrap_or_default()).await?;
        }
        Cmd::Repair { action } => {
            if let Some(paused) = match action {
                RepairAction::Pause => Some(true),
                RepairAction::Resume => Some(false),
                RepairAction::Status => None,
            } {
                admin.meta(MetaCommand::SetRepairPaused { paused }).await?;
            }
            println!("{}", ctl::view::placement_summary(&admin.view().await?));
        }
        Cmd::Rebalance => admin.rebalance().await?,
        Cmd::CreateUser { email, name, role, theaters, exists_ok } => {
            create_user(admin, &email, &name, role, theaters, exists_ok).await?;
        }
        Cmd::DeleteReplica { node, group, force } => {
            admin.delete_replica(node, GroupId(group), force).await?;
            eprintln!("deleted group {group}'s replica on node {node}");
        }
    }
    Ok(())
}

fn parse_role(raw: &str) -> Result<Role, String> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|_| "expected customer, theater_manager or admin".to_owned())
}

/// Hashes the password here (argon2id, as the gateway does) and registers the account; a
/// theater manager then gets its theaters.
async fn create_user(
    admin: &Admin,
    email: &str,
    name: &str,
    role: Role,
    theaters: Vec<u64>,
    exists_ok: bool,
) -> anyhow::Result<()> {
    let password = match std::env::var("MARQUEE_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            eprintln!("password (one line on stdin):");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let email = email.trim().to_lowercase();
    let password_hash = auth::hash_password(&password)?;
    let user_id = client::random_id();
    let register = CatalogCommand::RegisterUser {
        user_id,
        email: email.clone(),
        name: name.trim().to_owned(),
        password_hash,
        role,
    };
    let user = match admin.meta(MetaCommand::Catalog(register)).await {
        Ok(Reply::Meta(MetaReply::Catalog(CatalogReply::User { user }))) => user,
        Ok(other) => anyhow::bail!("unexpected reply {other:?}"),
        Err(ctl::CtlError::Refused(Rejection::EmailTaken)) if exists_ok => {
            eprintln!("{email} is already registered; nothing changed");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    if !theaters.is_empty() {
        let set_role = CatalogCommand::SetUserRole {
            user_id: user.user_id,
            role,
            theaters: theaters.into_iter().collect(),
        };
        admin.meta(MetaCommand::Catalog(set_role)).await?;
    }
    println!("{}", user.user_id);
    eprintln!("created {:?} {email} with id {}", user.role, user.user_id);
    Ok(())
}
