//! A test cluster's lifecycle: [`Options`], [`Cluster::start`] (nodes, optional payment
//! service, gateway, the admin account), restarting, adding and joining nodes, extra gateways,
//! finding leaders, waiting for replicas to converge, `marqueectl`, and tearing it all down
//! (with the tail of every log when a test panicked). The cluster topology and membership
//! operations it drives are described in docs/architecture.md and docs/operations.md.

use std::path::PathBuf;
use std::process::Child;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use proto::pb::GroupStatus;
use serde_json::Value;

pub use crate::processes::Options;
use crate::processes::{
    bin_dir, faketime_env, free_port, print_log_tail, spawn_gateway_process, spawn_payments,
    Gateway, Node,
};
use crate::wait::eventually;

/// The admin account every test cluster gets (made with `marqueectl create-user`).
pub const ADMIN_EMAIL: &str = "admin@marquee.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// A running cluster: nodes and one gateway.
pub struct Cluster {
    /// Nodes, index `i` has id `i + 1`.
    pub nodes: Vec<Node>,
    /// Gateway base URL, e.g. `http://127.0.0.1:12345`.
    pub url: String,
    pub(crate) gateway: Option<Child>,
    /// Base URL of the `marquee-payments` service, if [`Options::payments`] started one.
    pub payments_url: Option<String>,
    pub(crate) payments: Option<Child>,
    pub(crate) options: Options,
    pub(crate) bins: PathBuf,
    /// Kept so the data outlives the processes; removed on drop.
    pub dir: tempfile::TempDir,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Access token of the admin account ([`ADMIN_EMAIL`]).
    pub(crate) admin_token: String,
}

impl Cluster {
    /// Starts `options.nodes` nodes (node 1 bootstraps) and a gateway, and waits until the
    /// gateway is ready.
    ///
    /// # Errors
    /// A process failed to start or the cluster was not ready within 60 s.
    pub async fn start(options: Options) -> Result<Cluster> {
        let bins = bin_dir();
        let dir = tempfile::tempdir()?;
        let ports: Vec<(u16, u16)> =
            (0..options.nodes).map(|_| (free_port(), free_port())).collect();
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (grpc, _))| format!("{}=127.0.0.1:{grpc}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (i, (grpc, http)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let mut args = vec![
                format!("--id={id}"),
                format!("--grpc-addr=127.0.0.1:{grpc}"),
                format!("--http-addr=127.0.0.1:{http}"),
                format!("--data-dir={}", dir.path().join(format!("node{id}")).display()),
                format!("--peers={}", peers.join(",")),
                format!("--shards={}", options.shards),
                format!("--snapshot-logs={}", options.snapshot_logs),
                format!("--logs-kept={}", options.logs_kept),
                format!("--hold-ttl-ms={}", options.hold_ttl_ms),
                "--expiry-tick-ms=200".into(),
                format!("--placement-interval-s={}", options.placement_interval_s),
                format!("--repair-after-s={}", options.repair_after_s),
            ];
            if id == 1 {
                args.push("--bootstrap".into());
            }
            if let Some(zone) = options.zones.get(i) {
                args.push(format!("--zone={zone}"));
            }
            let env = if options.faketime {
                faketime_env(&dir.path().join(format!("node{id}.faketime")))?
            } else {
                Vec::new()
            };
            let node = Node {
                id,
                grpc: format!("127.0.0.1:{grpc}"),
                http: format!("127.0.0.1:{http}"),
                args,
                env,
                tmpfs_mb: options.small_disk.and_then(|(node, mb)| (node == id).then_some(mb)),
                child: Mutex::new(None),
                log: dir.path().join(format!("node{id}.log")),
                release: Mutex::new(options.release.clone()),
            };
            node.spawn(&bins)?;
            nodes.push(node);
        }
        let (payments, payments_url) = if options.payments {
            let (child, url) = spawn_payments(&bins, &dir.path().join("payments.log"))?;
            (Some(child), Some(url))
        } else {
            (None, None)
        };
        let node_addrs: Vec<String> = nodes.iter().map(|n| n.grpc.clone()).collect();
        let (gateway, url) = spawn_gateway_process(
            &bins,
            &dir.path().join("gateway.log"),
            &node_addrs,
            payments_url.as_deref(),
            &options,
        )?;
        let cluster = Cluster {
            nodes,
            url,
            gateway: Some(gateway),
            payments_url,
            payments,
            options,
            bins,
            dir,
            http: reqwest::Client::builder().timeout(Duration::from_secs(20)).build()?,
            admin_token: String::new(),
        };
        if let Some(payments_url) = &cluster.payments_url {
            let url = format!("{payments_url}/healthz");
            let up = eventually("payment service up", Duration::from_secs(30), || async {
                Ok(cluster.http.get(&url).send().await?.status().is_success().then_some(()))
            })
            .await;
            if let Err(e) = up {
                // The directory goes with the cluster: show the logs while they are there.
                cluster.print_log_tails();
                return Err(e.context(cluster.logs_hint()));
            }
        }
        if let Err(e) = cluster.wait_ready().await {
            cluster.print_log_tails();
            return Err(e);
        }
        let mut cluster = cluster;
        cluster.create_account(ADMIN_EMAIL, ADMIN_PASSWORD, "admin", &[]).await?;
        let login = cluster.login(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
        cluster.admin_token =
            login["access_token"].as_str().context("access_token in login reply")?.to_owned();
        Ok(cluster)
    }

    /// SIGKILLs the cluster's main gateway (the one at [`Cluster::url`]).
    pub fn kill_gateway(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            // Already-exited children make kill fail; waiting reaps them either way.
            let _ = gateway.kill();
            let _ = gateway.wait();
        }
    }

    /// Starts another gateway against the same nodes (and payment service, if any) with the
    /// gateway options of `options` (checkout window, payment timeout, sweeper), and waits until
    /// it is ready. `name` names its log file.
    ///
    /// # Errors
    /// Spawning failed or it was not ready within 60 s.
    pub async fn spawn_gateway(&self, name: &str, options: &Options) -> Result<Gateway> {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.grpc.clone()).collect();
        self.spawn_gateway_on(name, options, &nodes).await
    }

    /// Like [`Cluster::spawn_gateway`], given only `nodes` (gRPC addresses) as its seeds.
    ///
    /// # Errors
    /// Spawning failed or it was not ready within 60 s.
    pub async fn spawn_gateway_on(
        &self,
        name: &str,
        options: &Options,
        nodes: &[String],
    ) -> Result<Gateway> {
        let log = self.dir.path().join(format!("{name}.log"));
        let (child, url) =
            spawn_gateway_process(&self.bins, &log, nodes, self.payments_url.as_deref(), options)?;
        let gateway = Gateway { url, child: Mutex::new(Some(child)), log };
        let ready = format!("{}/readyz", gateway.url);
        eventually("extra gateway ready", Duration::from_secs(60), || async {
            Ok(self.http.get(&ready).send().await?.status().is_success().then_some(()))
        })
        .await
        .with_context(|| self.logs_hint())?;
        Ok(gateway)
    }

    /// The options the cluster was started with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Waits until the gateway answers `/readyz` (a leader serves linearizable reads).
    ///
    /// # Errors
    /// Not ready within 60 s.
    pub async fn wait_ready(&self) -> Result<()> {
        let url = format!("{}/readyz", self.url);
        eventually("gateway ready", Duration::from_secs(60), || async {
            let response = self.http.get(&url).send().await?;
            Ok(response.status().is_success().then_some(()))
        })
        .await
        .with_context(|| self.logs_hint())
    }

    /// Where the process logs are, for failure messages.
    pub fn logs_hint(&self) -> String {
        format!("process logs in {}", self.dir.path().display())
    }

    /// Starts one more node that joins the cluster through node 1 (`--join`); returns its index.
    ///
    /// # Errors
    /// Spawning failed.
    pub fn add_joining_node(&mut self) -> Result<usize> {
        let node = self.joining_node(self.nodes.len() as u64 + 1)?;
        self.nodes.push(node);
        Ok(self.nodes.len() - 1)
    }

    /// Starts a node with id `id` that registers through node 1 (`--join`) and returns it
    /// without adding it to [`Cluster::nodes`] (so it can start while the cluster is borrowed
    /// by running clients). It is killed when dropped.
    ///
    /// # Errors
    /// Spawning failed.
    pub fn joining_node(&self, id: u64) -> Result<Node> {
        self.joining_node_via(id, &self.nodes[0].grpc)
    }

    /// Like [`Cluster::joining_node`], registering through `seed` (a gRPC address).
    ///
    /// # Errors
    /// Spawning failed.
    pub fn joining_node_via(&self, id: u64, seed: &str) -> Result<Node> {
        let (grpc, http) = (free_port(), free_port());
        let node = Node {
            id,
            grpc: format!("127.0.0.1:{grpc}"),
            http: format!("127.0.0.1:{http}"),
            args: vec![
                format!("--id={id}"),
                format!("--grpc-addr=127.0.0.1:{grpc}"),
                format!("--http-addr=127.0.0.1:{http}"),
                format!("--data-dir={}", self.dir.path().join(format!("node{id}")).display()),
                format!("--join={seed}"),
                "--expiry-tick-ms=200".into(),
                format!("--placement-interval-s={}", self.options.placement_interval_s),
                format!("--repair-after-s={}", self.options.repair_after_s),
            ],
            env: Vec::new(),
            tmpfs_mb: None,
            child: Mutex::new(None),
            log: self.dir.path().join(format!("node{id}.log")),
            release: Mutex::new(None),
        };
        node.spawn(&self.bins)?;
        Ok(node)
    }

    /// Sets the wall-clock offset of node `index` (libfaketime syntax: `+120s`, `-90s`, `+0s`);
    /// the node reads it within a second. Needs [`Options::faketime`].
    ///
    /// # Errors
    /// The cluster runs without libfaketime, or the file could not be written.
    pub fn skew_clock(&self, index: usize, offset: &str) -> Result<()> {
        anyhow::ensure!(self.options.faketime, "start the cluster with Options::faketime");
        let file = self.dir.path().join(format!("node{}.faketime", self.nodes[index].id));
        std::fs::write(file, format!("{offset}\n"))?;
        Ok(())
    }

    /// Upgrades node `index` from the older release it runs ([`Options::release`]) to this
    /// build: SIGTERM (waiting up to `timeout` for it to exit), then the same arguments and
    /// data directory with this build's binary. Returns the old process's exit code.
    ///
    /// # Errors
    /// It did not stop in time, or spawning failed.
    pub fn upgrade(&self, index: usize, timeout: Duration) -> Result<Option<i32>> {
        let node = &self.nodes[index];
        let exit = node.terminate(timeout)?;
        *node.release.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        node.spawn(&self.bins)?;
        Ok(exit)
    }

    /// Restarts a killed node with its original arguments and data.
    ///
    /// # Errors
    /// Spawning failed.
    pub fn restart(&self, index: usize) -> Result<()> {
        self.nodes[index].spawn(&self.bins)
    }

    /// Index of the node that currently leads inventory shard 1.
    ///
    /// # Errors
    /// No leader known within 30 s.
    pub async fn leader(&self) -> Result<usize> {
        self.leader_of(1).await
    }

    /// Index of the node that currently leads `group`.
    ///
    /// # Errors
    /// No leader known within 30 s.
    pub async fn leader_of(&self, group: u64) -> Result<usize> {
        eventually("a leader", Duration::from_secs(30), || async {
            for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.is_running()) {
                if let Ok(status) = node.group_status(group).await {
                    if status.is_leader {
                        return Ok(Some(i));
                    }
                }
            }
            Ok(None)
        })
        .await
    }

    /// Waits until, for every group, every running node hosting it applied the same index with
    /// the same digest; returns the statuses of shard 1 (node order), for the single-shard
    /// tests.
    ///
    /// # Errors
    /// Not converged within `timeout`.
    pub async fn converged(&self, timeout: Duration) -> Result<Vec<GroupStatus>> {
        let all = self.all_converged(timeout).await?;
        Ok(all.into_iter().filter(|(group, _)| *group == 1).flat_map(|(_, s)| s).collect())
    }

    /// Like [`Cluster::converged`], returning every group's replica statuses.
    ///
    /// # Errors
    /// Not converged within `timeout`.
    pub async fn all_converged(
        &self,
        timeout: Duration,
    ) -> Result<std::collections::BTreeMap<u64, Vec<GroupStatus>>> {
        eventually("replicas to converge", timeout, || async {
            let mut groups = std::collections::BTreeMap::<u64, Vec<(u64, GroupStatus)>>::new();
            for (node, status) in self.running_statuses().await? {
                groups.entry(status.group_id).or_default().push((node, status));
            }
            // The groups whose replicas differ, with each replica's applied index and digest,
            // so a timeout says what stayed apart.
            let apart: Vec<String> = groups
                .iter()
                .filter(|(_, statuses)| {
                    let first = &statuses[0].1;
                    !statuses.iter().all(|(_, s)| {
                        s.applied_index == first.applied_index && s.digest == first.digest
                    })
                })
                .map(|(group, statuses)| {
                    let replicas: Vec<String> = statuses
                        .iter()
                        .map(|(node, s)| {
                            format!("node {node} at {} (digest {:016x})", s.applied_index, s.digest)
                        })
                        .collect();
                    format!("group {group}: {}", replicas.join(", "))
                })
                .collect();
            if apart.is_empty() {
                let groups = groups
                    .into_iter()
                    .map(|(group, statuses)| {
                        (group, statuses.into_iter().map(|(_, s)| s).collect())
                    })
                    .collect();
                Ok(Some(groups))
            } else {
                anyhow::bail!("replicas differ: {}", apart.join("; "))
            }
        })
        .await
    }

    /// Waits until every running replica of every group has applied at least what the most
    /// advanced replica of its group had applied when the wait began: the cluster has caught
    /// up with a restarted node, even while clients keep writing (unlike
    /// [`Cluster::all_converged`], which needs a quiet moment with every replica at one index).
    ///
    /// # Errors
    /// A replica stayed behind for `timeout` (the message names it and the index it needs).
    pub async fn caught_up(&self, timeout: Duration) -> Result<()> {
        let targets = eventually("every node to answer status", timeout, || async {
            let mut targets = std::collections::BTreeMap::<u64, u64>::new();
            for (_, status) in self.running_statuses().await? {
                let target = targets.entry(status.group_id).or_default();
                *target = (*target).max(status.applied_index);
            }
            Ok(Some(targets))
        })
        .await?;
        eventually("replicas to catch up", timeout, || async {
            for (node, status) in self.running_statuses().await? {
                let (group, applied) = (status.group_id, status.applied_index);
                let target = targets.get(&group).copied().unwrap_or_default();
                anyhow::ensure!(
                    applied >= target,
                    "node {node} applied group {group} to {applied}, behind {target}"
                );
            }
            Ok(Some(()))
        })
        .await
    }

    /// Every running node's view of each replica it hosts, as (node id, status).
    ///
    /// # Errors
    /// A node did not answer (named, with how its process ended if it did).
    async fn running_statuses(&self) -> Result<Vec<(u64, GroupStatus)>> {
        let mut all = Vec::new();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            let statuses = node.statuses().await.with_context(|| {
                // A refused connection with the process gone says why it went.
                let exit = node.exit_status().unwrap_or_else(|| "still running".into());
                format!(
                    "status of node {} (pid {:?}, {}, process: {exit})",
                    node.id,
                    node.pid(),
                    node.grpc
                )
            })?;
            all.extend(statuses.into_iter().map(|status| (node.id, status)));
        }
        Ok(all)
    }

    /// Runs `marqueectl` against this cluster's nodes; returns its stdout.
    ///
    /// # Errors
    /// It exited with a failure (its stderr is in the error).
    pub async fn ctl(&self, args: &[&str]) -> Result<String> {
        let nodes: Vec<String> =
            self.nodes.iter().filter(|n| n.is_running()).map(|n| n.grpc.clone()).collect();
        self.ctl_via(&nodes, args).await
    }

    /// Runs `marqueectl` given only `nodes` (gRPC addresses) as its seeds; returns its stdout.
    ///
    /// # Errors
    /// It exited with a failure (its stderr is in the error).
    pub async fn ctl_via(&self, nodes: &[String], args: &[&str]) -> Result<String> {
        let output = tokio::process::Command::new(self.bins.join("marqueectl"))
            .arg(format!("--nodes={}", nodes.join(",")))
            .args(args)
            .output()
            .await
            .context("running marqueectl")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(output.status.success(), "marqueectl {args:?} failed: {stderr}");
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `marqueectl status --json`.
    ///
    /// # Errors
    /// marqueectl failed or printed something else than JSON.
    pub async fn ctl_status(&self) -> Result<Value> {
        Ok(serde_json::from_str(&self.ctl(&["status", "--json"]).await?)?)
    }
}

impl Cluster {
    /// Prints the tail of every process log of the cluster to stderr.
    pub fn print_log_tails(&self) {
        let mut logs: Vec<PathBuf> = self.nodes.iter().map(|n| n.log.clone()).collect();
        logs.push(self.dir.path().join("gateway.log"));
        if self.payments.is_some() {
            logs.push(self.dir.path().join("payments.log"));
        }
        for log in logs {
            print_log_tail(&log);
        }
    }
}

impl Cluster {
    /// With `MARQUEE_TEST_KEEP_LOGS=<dir>`, copies every process log of this cluster (gateways
    /// spawned beside it included) to `<dir>/<cluster dir name>/`, for reading a failure whole.
    fn keep_logs(&self) {
        let Some(keep) = std::env::var_os("MARQUEE_TEST_KEEP_LOGS") else { return };
        let name = self.dir.path().file_name().unwrap_or_default();
        let to = PathBuf::from(keep).join(name);
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else { return };
        if std::fs::create_dir_all(&to).is_err() {
            return;
        }
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let _ = std::fs::copy(&path, to.join(entry.file_name()));
            }
        }
        eprintln!("logs kept in {}", to.display());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: show the tail of every process log before the dir is removed.
            self.print_log_tails();
            self.keep_logs();
        }
        if let Some(mut gateway) = self.gateway.take() {
            let _ = gateway.kill();
            let _ = gateway.wait();
        }
        if let Some(mut payments) = self.payments.take() {
            let _ = payments.kill();
            let _ = payments.wait();
        }
        for node in &self.nodes {
            // SIGKILL also ends a SIGSTOPped process on Linux: no SIGCONT needed.
            node.kill();
        }
    }
}
