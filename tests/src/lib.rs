//! Test harness: starts real `marquee-node` and `marquee-gateway` processes (and, on request, a
//! `marquee-payments` service the gateways charge through) on loopback ports in a temporary
//! directory, and kills them all when dropped.
//!
//! The binaries are the ones cargo built next to the test executable (`cargo build --workspace
//! --bins` first; the README's test command does this). Nothing here sleeps to wait for a
//! condition: [`eventually`] polls with a deadline.

pub mod chaos;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use proto::pb::cluster_client::ClusterClient;
use proto::pb::{GroupStatus, StatusRequest};
use serde_json::{json, Value};

/// Secret test gateways sign access tokens with (shared, so any gateway accepts any token).
pub const JWT_SECRET: &str = "marquee-test-jwt-secret-0123456789abcdef";
/// The admin account every test cluster gets (made with `marqueectl create-user`).
pub const ADMIN_EMAIL: &str = "admin@marquee.test";
/// Its password.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// Password of the customer accounts [`Cluster::user`] registers.
pub const USER_PASSWORD: &str = "customer-password";

/// Directory holding the workspace's binaries.
///
/// # Panics
/// If the binaries were not built.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf();
    for bin in ["marquee-node", "marquee-gateway", "marqueectl"] {
        assert!(
            dir.join(bin).exists(),
            "{} not found: run `cargo build --workspace --bins` before the integration tests",
            dir.join(bin).display()
        );
    }
    dir
}

/// A free loopback port (bound then released; the OS does not hand it out again at once).
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Polls `check` until it returns `Ok(Some(value))` or `timeout` passes.
///
/// # Errors
/// The deadline passed; the last error or `None` is reported with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("condition not met");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The movie test shows play.
pub fn test_movie() -> Value {
    json!({
        "title": "Test Movie", "description": "", "genres": ["drama"], "language": "english",
        "duration_min": 120, "release_date": "2026-01-01", "cast": [], "director": "",
        "certificate": "U", "poster_url": null,
    })
}

/// The theater test shows play in.
pub fn test_theater() -> Value {
    json!({
        "name": "Test Theater", "city": "Testville", "address": "", "lat_e6": 0, "lon_e6": 0,
        "amenities": [], "utc_offset_minutes": 0,
    })
}

/// Options of a test cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of nodes (all bootstrap peers).
    pub nodes: usize,
    /// Inventory shards created at bootstrap.
    pub shards: u64,
    /// `--snapshot-logs` for every node.
    pub snapshot_logs: u64,
    /// `--logs-kept` for every node.
    pub logs_kept: u64,
    /// `--hold-ttl-ms` default.
    pub hold_ttl_ms: u64,
    /// `--checkout-window-ms` of the gateway.
    pub checkout_window_ms: u64,
    /// `--payment-timeout-ms` of the gateway.
    pub payment_timeout_ms: u64,
    /// Start a `marquee-payments` service and point the gateway at it (`--payments-url`);
    /// otherwise the gateway uses its in-process sandbox.
    pub payments: bool,
    /// `--sweep-interval-ms` of the gateway (0: no recovery sweeper).
    pub sweep_interval_ms: u64,
    /// `--sweep-min-age-ms` of the gateway.
    pub sweep_min_age_ms: u64,
    /// The gateway's per-IP rate limit (requests/s; 0: off, the default for tests).
    pub rate_limit_ip_per_s: f64,
    /// The gateway's per-user rate limit (requests/s; 0: off).
    pub rate_limit_user_per_s: f64,
    /// Extra environment of the gateway (e.g. `MARQUEE_SEARCH`, `MEILI_URL`).
    pub gateway_env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            shards: 1,
            snapshot_logs: 20_000,
            logs_kept: 2_000,
            hold_ttl_ms: 600_000,
            checkout_window_ms: 120_000,
            payment_timeout_ms: 1_000,
            payments: false,
            sweep_interval_ms: 5_000,
            sweep_min_age_ms: 30_000,
            rate_limit_ip_per_s: 0.0,
            rate_limit_user_per_s: 0.0,
            gateway_env: Vec::new(),
        }
    }
}

/// One node process.
pub struct Node {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub grpc: String,
    /// HTTP address.
    pub http: String,
    args: Vec<String>,
    child: Mutex<Option<Child>>,
    log: PathBuf,
}

impl Node {
    fn spawn(&self, bins: &Path) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(bins.join("marquee-node"))
            .args(&self.args)
            .env("MARQUEE_LOG", "info,openraft=warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning marquee-node")?;
        *self.lock() = Some(child);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.lock().is_some()
    }

    /// SIGKILLs the process.
    pub fn kill(&self) {
        let child = self.lock().take();
        if let Some(mut child) = child {
            // Already-exited children make kill fail; waiting reaps them either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the process to exit; returns its exit code.
    ///
    /// # Errors
    /// Not running, the signal failed, or the process did not exit in time.
    pub fn terminate(&self, timeout: Duration) -> Result<Option<i32>> {
        let mut child = self.lock().take().context("node not running")?;
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(exit) = child.try_wait()? {
                return Ok(exit.code());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("node {} did not exit within {timeout:?} of SIGTERM", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOPs (`pause = true`) or SIGCONTs the process.
    ///
    /// # Errors
    /// The process is not running or `kill` failed.
    pub fn signal_pause(&self, pause: bool) -> Result<()> {
        let pid = self.lock().as_ref().context("node not running")?.id();
        let status = Command::new("kill")
            .arg(if pause { "-STOP" } else { "-CONT" })
            .arg(pid.to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -STOP/-CONT failed");
        Ok(())
    }

    /// The node's view of every replica it hosts (with state digests).
    ///
    /// # Errors
    /// The node is unreachable.
    pub async fn statuses(&self) -> Result<Vec<GroupStatus>> {
        let mut client = ClusterClient::connect(format!("http://{}", self.grpc)).await?;
        let request = StatusRequest { with_digest: true };
        let reply = tokio::time::timeout(Duration::from_secs(5), client.status(request))
            .await
            .context("status timed out")??
            .into_inner();
        Ok(reply.groups)
    }

    /// The node's view of `group`.
    ///
    /// # Errors
    /// The node is unreachable or hosts no replica of the group.
    pub async fn group_status(&self, group: u64) -> Result<GroupStatus> {
        self.statuses()
            .await?
            .into_iter()
            .find(|g| g.group_id == group)
            .with_context(|| format!("node {} hosts no replica of group {group}", self.id))
    }

    /// The node's view of inventory shard 1 (the only shard of a default test cluster).
    ///
    /// # Errors
    /// The node is unreachable or hosts no replica of shard 1.
    pub async fn status(&self) -> Result<GroupStatus> {
        self.group_status(1).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An extra gateway process started by [`Cluster::spawn_gateway`]; SIGKILLed when dropped.
pub struct Gateway {
    /// Base URL, e.g. `http://127.0.0.1:12345`.
    pub url: String,
    child: Mutex<Option<Child>>,
    log: PathBuf,
}

impl Gateway {
    /// SIGKILLs the process.
    pub fn kill(&self) {
        let child = self.child.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(mut child) = child {
            // Already-exited children make kill fail; waiting reaps them either way.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where its log is.
    pub fn log(&self) -> &Path {
        &self.log
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            eprintln!("---- tail of {} ----\n{tail}", self.log.display());
        }
        self.kill();
    }
}

/// Starts a gateway on a free port against `nodes`, with the gateway options of `options`.
fn spawn_gateway_process(
    bins: &Path,
    log: &Path,
    nodes: &[String],
    payments_url: Option<&str>,
    options: &Options,
) -> Result<(Child, String)> {
    let port = free_port();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut command = Command::new(bins.join("marquee-gateway"));
    // Tests drive many requests from one loopback address: rate limits only where a test asks.
    command.env("MARQUEE_GATEWAY_RATE_LIMIT_IP_PER_S", options.rate_limit_ip_per_s.to_string());
    command.env("MARQUEE_GATEWAY_RATE_LIMIT_USER_PER_S", options.rate_limit_user_per_s.to_string());
    command.env("MARQUEE_JWT_SECRET", JWT_SECRET);
    command.envs(options.gateway_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    command
        .arg(format!("--listen=127.0.0.1:{port}"))
        .arg(format!("--nodes={}", nodes.join(",")))
        .arg(format!("--checkout-window-ms={}", options.checkout_window_ms))
        .arg(format!("--payment-timeout-ms={}", options.payment_timeout_ms))
        .arg(format!("--sweep-interval-ms={}", options.sweep_interval_ms))
        .arg(format!("--sweep-min-age-ms={}", options.sweep_min_age_ms));
    if let Some(url) = payments_url {
        command.arg(format!("--payments-url={url}"));
    }
    let child = command
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("spawning marquee-gateway")?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// A running cluster: nodes and one gateway.
pub struct Cluster {
    /// Nodes, index `i` has id `i + 1`.
    pub nodes: Vec<Node>,
    /// Gateway base URL, e.g. `http://127.0.0.1:12345`.
    pub url: String,
    gateway: Option<Child>,
    /// Base URL of the `marquee-payments` service, if [`Options::payments`] started one.
    pub payments_url: Option<String>,
    payments: Option<Child>,
    options: Options,
    bins: PathBuf,
    /// Kept so the data outlives the processes; removed on drop.
    pub dir: tempfile::TempDir,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Access token of the admin account ([`ADMIN_EMAIL`]).
    admin_token: String,
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
            ];
            if id == 1 {
                args.push("--bootstrap".into());
            }
            let node = Node {
                id,
                grpc: format!("127.0.0.1:{grpc}"),
                http: format!("127.0.0.1:{http}"),
                args,
                child: Mutex::new(None),
                log: dir.path().join(format!("node{id}.log")),
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
            eventually("payment service up", Duration::from_secs(30), || async {
                Ok(cluster.http.get(&url).send().await?.status().is_success().then_some(()))
            })
            .await
            .with_context(|| cluster.logs_hint())?;
        }
        cluster.wait_ready().await?;
        let mut cluster = cluster;
        cluster.create_account(ADMIN_EMAIL, ADMIN_PASSWORD, "admin", &[]).await?;
        let login = cluster.login(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
        cluster.admin_token =
            login["access_token"].as_str().context("access_token in login reply")?.to_owned();
        Ok(cluster)
    }

    /// Creates an account with `marqueectl create-user` (how operators make the first admin
    /// and theater managers); returns its user id.
    ///
    /// # Errors
    /// marqueectl failed.
    pub async fn create_account(
        &self,
        email: &str,
        password: &str,
        role: &str,
        theaters: &[u64],
    ) -> Result<u64> {
        let nodes: Vec<String> =
            self.nodes.iter().filter(|n| n.is_running()).map(|n| n.grpc.clone()).collect();
        let mut command = tokio::process::Command::new(self.bins.join("marqueectl"));
        command
            .env("MARQUEE_PASSWORD", password)
            .arg(format!("--nodes={}", nodes.join(",")))
            .args(["create-user", "--email", email, "--name", email, "--role", role]);
        if !theaters.is_empty() {
            let list: Vec<String> = theaters.iter().map(u64::to_string).collect();
            command.arg(format!("--theaters={}", list.join(",")));
        }
        let output = command.output().await.context("running marqueectl create-user")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(output.status.success(), "marqueectl create-user failed: {stderr}");
        String::from_utf8_lossy(&output.stdout).trim().parse().context("user id on stdout")
    }

    /// `POST /v1/auth/login`; returns the tokens body.
    ///
    /// # Errors
    /// The login failed.
    pub async fn login(&self, email: &str, password: &str) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}/v1/auth/login", self.url))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == 200, "login {email}: {status} {body}");
        Ok(body)
    }

    /// The admin account's access token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Registers `n` customer accounts named `{prefix}{i}`, a few at a time.
    ///
    /// # Errors
    /// A registration failed.
    pub async fn users(&self, prefix: &str, n: usize) -> Result<Vec<User<'_>>> {
        let slots: Vec<Mutex<Option<Result<User<'_>>>>> =
            (0..n).map(|_| Mutex::new(None)).collect();
        for chunk in slots.chunks(4).enumerate() {
            let (c, chunk) = chunk;
            join_all(chunk.iter().enumerate().map(|(j, slot)| async move {
                let user = self.user(&format!("{prefix}{}", c * 4 + j)).await;
                *slot.lock().expect("unpoisoned") = Some(user);
            }))
            .await;
        }
        slots
            .into_iter()
            .map(|slot| slot.into_inner().expect("unpoisoned").context("registered")?)
            .collect()
    }

    /// The value of one Prometheus series (e.g. `name{label="x"}`) on the gateway at
    /// `gateway_url`; 0 when the series has not appeared yet.
    ///
    /// # Errors
    /// The scrape failed.
    pub async fn metric(&self, gateway_url: &str, series: &str) -> Result<f64> {
        let text = self.http.get(format!("{gateway_url}/metrics")).send().await?.text().await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0))
    }

    /// Registers a new customer account named `name` (a unique email is derived from it)
    /// through `POST /v1/auth/register` and returns its session.
    ///
    /// # Errors
    /// Registration failed.
    pub async fn user(&self, name: &str) -> Result<User<'_>> {
        let email = format!("{name}-{:016x}@marquee.test", rand_u64());
        let response = self
            .http
            .post(format!("{}/v1/auth/register", self.url))
            .json(&json!({"email": email, "password": USER_PASSWORD, "name": name}))
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == 201, "register {name}: {status} {body}");
        Ok(User {
            cluster: self,
            name: name.to_owned(),
            email,
            user_id: body["user"]["user_id"].as_u64().context("user_id")?,
            token: body["access_token"].as_str().context("access_token")?.to_owned(),
        })
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
        let log = self.dir.path().join(format!("{name}.log"));
        let (child, url) =
            spawn_gateway_process(&self.bins, &log, &nodes, self.payments_url.as_deref(), options)?;
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

    /// The payment service's ledger (`GET /v1/ledger`): `{charges, refunds}`.
    ///
    /// # Errors
    /// No payment service was started, or it did not answer.
    pub async fn payments_ledger(&self) -> Result<Value> {
        let url = self.payments_url.as_ref().context("no payment service in this cluster")?;
        let response = self.http.get(format!("{url}/v1/ledger")).send().await?;
        anyhow::ensure!(response.status() == 200, "ledger: {}", response.status());
        Ok(response.json().await?)
    }

    /// Sets the payment service's fault flags (`PUT /v1/admin/faults`).
    ///
    /// # Errors
    /// No payment service was started, or it refused the flags.
    pub async fn set_payment_faults(&self, faults: Value) -> Result<()> {
        let url = self.payments_url.as_ref().context("no payment service in this cluster")?;
        let response = self.http.put(format!("{url}/v1/admin/faults")).json(&faults).send().await?;
        anyhow::ensure!(response.status() == 200, "set faults: {}", response.status());
        Ok(())
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
                format!("--join={}", self.nodes[0].grpc),
                "--expiry-tick-ms=200".into(),
            ],
            child: Mutex::new(None),
            log: self.dir.path().join(format!("node{id}.log")),
        };
        node.spawn(&self.bins)?;
        Ok(node)
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
            let mut groups = std::collections::BTreeMap::<u64, Vec<GroupStatus>>::new();
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                for status in node.statuses().await? {
                    groups.entry(status.group_id).or_default().push(status);
                }
            }
            let same = groups.values().all(|statuses| {
                let first = &statuses[0];
                statuses
                    .iter()
                    .all(|s| s.applied_index == first.applied_index && s.digest == first.digest)
            });
            Ok(same.then_some(groups))
        })
        .await
    }

    /// Runs `marqueectl` against this cluster's nodes; returns its stdout.
    ///
    /// # Errors
    /// It exited with a failure (its stderr is in the error).
    pub async fn ctl(&self, args: &[&str]) -> Result<String> {
        let nodes: Vec<String> =
            self.nodes.iter().filter(|n| n.is_running()).map(|n| n.grpc.clone()).collect();
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

    /// Creates a show with `rows` rows of `seats` standard seats, far in the future; returns
    /// its id.
    ///
    /// # Errors
    /// The request failed.
    pub async fn create_show(&self, rows: usize, seats: u32) -> Result<u64> {
        self.create_show_at(rows, seats, 4_102_444_800_000).await
    }

    /// Sends an admin request and returns the JSON reply, failing on an unexpected status.
    ///
    /// # Errors
    /// The request failed or answered another status.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        expect: u16,
    ) -> Result<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        anyhow::ensure!(status == expect, "{path}: {status} {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a show starting at `starts_at_ms` through the catalog: a test movie and theater
    /// (idempotent, fixed ids), a new screen with `rows` rows of `seats` standard seats, then
    /// the show. Returns the show id.
    ///
    /// # Errors
    /// A request failed.
    pub async fn create_show_at(&self, rows: usize, seats: u32, starts_at_ms: u64) -> Result<u64> {
        let put = reqwest::Method::PUT;
        let post = reqwest::Method::POST;
        self.admin(put.clone(), "/v1/admin/movies/1", &test_movie(), 200).await?;
        self.admin(put, "/v1/admin/theaters/1", &test_theater(), 200).await?;
        let rows: Vec<Value> = (0..rows)
            .map(|r| json!({"label": row_label(r), "category": "standard", "seats": seats, "aisles_after": []}))
            .collect();
        let screen = json!({"name": "Screen", "format": "2D", "rows": rows});
        let screen = self.admin(post.clone(), "/v1/admin/theaters/1/screens", &screen, 201).await?;
        let show = json!({
            "movie_id": 1,
            "screen_id": screen["screen_id"],
            "starts_at_ms": starts_at_ms,
            "prices": {"standard": 25_000},
            "currency": "INR",
        });
        let created = self.admin(post, "/v1/admin/shows", &show, 201).await?;
        created["show_id"].as_u64().context("show_id in reply")
    }

    /// Confirmed bookings of a show, via the admin API.
    ///
    /// # Errors
    /// The request failed.
    pub async fn bookings(&self, show_id: u64) -> Result<Vec<Value>> {
        let response = self
            .http
            .get(format!("{}/v1/admin/shows/{show_id}/bookings", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 200, "bookings: {}", response.status());
        let body: Value = response.json().await?;
        body["bookings"].as_array().cloned().context("bookings array")
    }

    /// The seat map of a show.
    ///
    /// # Errors
    /// The request failed.
    pub async fn seat_map(&self, show_id: u64) -> Result<Value> {
        let response =
            self.http.get(format!("{}/v1/shows/{show_id}/seats", self.url)).send().await?;
        anyhow::ensure!(response.status() == 200, "seat map: {}", response.status());
        Ok(response.json().await?)
    }

    /// Seat ids with the given status in a seat map.
    pub fn seats_with_status(seat_map: &Value, status: &str) -> Vec<String> {
        seat_map["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row["seats"].as_array().cloned().unwrap_or_default())
            .filter(|seat| seat["status"] == status)
            .filter_map(|seat| seat["seat_id"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: show the tail of every process log before the dir is removed.
            let mut logs: Vec<PathBuf> = self.nodes.iter().map(|n| n.log.clone()).collect();
            logs.push(self.dir.path().join("gateway.log"));
            if self.payments.is_some() {
                logs.push(self.dir.path().join("payments.log"));
            }
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                eprintln!("---- tail of {} ----\n{tail}", log.display());
            }
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

/// Starts `marquee-payments` on a free port; returns the child and its base URL.
fn spawn_payments(bins: &Path, log: &Path) -> Result<(Child, String)> {
    let binary = bins.join("marquee-payments");
    anyhow::ensure!(
        binary.exists(),
        "{} not found: run `cargo build --workspace --bins` before the integration tests",
        binary.display()
    );
    let port = free_port();
    let log = std::fs::File::create(log)?;
    let child = Command::new(binary)
        .arg(format!("--listen=127.0.0.1:{port}"))
        // Long enough that a gateway always gives up on `tok_timeout` first.
        .arg("--timeout-stall-ms=60000")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("spawning marquee-payments")?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// Row label for row index `r`: A..Z, then AA, AB, ...
pub fn row_label(r: usize) -> String {
    if r < 26 {
        ((b'A' + r as u8) as char).to_string()
    } else {
        format!("{}{}", row_label(r / 26 - 1), row_label(r % 26))
    }
}

/// A signed-in customer account ([`Cluster::user`]).
pub struct User<'a> {
    /// The cluster.
    pub cluster: &'a Cluster,
    /// Display name (what the test called it).
    pub name: String,
    /// Login email.
    pub email: String,
    /// Account id.
    pub user_id: u64,
    /// Access token.
    pub token: String,
}

/// 64 random bits (unique test emails).
pub fn rand_u64() -> u64 {
    rand::random()
}

impl User<'_> {
    /// `POST /v1/shows/{id}/holds` with a JSON body; returns (status, body).
    ///
    /// # Errors
    /// Transport failure.
    pub async fn hold(&self, show_id: u64, body: Value) -> Result<(u16, Value)> {
        let response = self
            .cluster
            .http
            .post(format!("{}/v1/shows/{show_id}/holds", self.cluster.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
    }

    /// `POST /v1/bookings`; returns (status, body).
    ///
    /// # Errors
    /// Transport failure.
    pub async fn book(&self, hold_id: &str, token: &str, key: &str) -> Result<(u16, Value)> {
        let response = self
            .cluster
            .http
            .post(format!("{}/v1/bookings", self.cluster.url))
            .bearer_auth(&self.token)
            .header("idempotency-key", key)
            .json(&json!({"hold_id": hold_id, "payment_token": token}))
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
    }

    /// A request signed in as this user; returns (status, body).
    ///
    /// # Errors
    /// Transport failure.
    pub async fn send(&self, method: reqwest::Method, path: &str) -> Result<(u16, Value)> {
        let response = self
            .cluster
            .http
            .request(method, format!("{}{path}", self.cluster.url))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok((response.status().as_u16(), response.json().await.unwrap_or(Value::Null)))
    }
}

/// A raw request: `token` as a bearer token, `body` sent verbatim as JSON. Returns the status,
/// the content type and the JSON body (`Null` when there is none).
///
/// # Errors
/// Transport failure.
pub async fn raw_request(
    cluster: &Cluster,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String, Value)> {
    let mut request = cluster.http.request(method, format!("{}{path}", cluster.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, response.json().await.unwrap_or(Value::Null)))
}

/// The seat states of a seat map body, by seat id.
pub fn seat_states(seat_map: &Value) -> BTreeMap<String, String> {
    seat_map["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row["seats"].as_array().cloned().unwrap_or_default())
        .filter_map(|seat| {
            Some((seat["seat_id"].as_str()?.to_owned(), seat["status"].as_str()?.to_owned()))
        })
        .collect()
}

/// Seat ids listed in a hold or booking body.
pub fn seat_list(body: &Value) -> Vec<String> {
    body["seats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// Every confirmed booking's seats are disjoint, match the sold seats of the map exactly, and
/// include every booking a client was told succeeded. Returns the number of bookings.
///
/// # Errors
/// An invariant is broken, or the cluster could not be read.
pub async fn audit(
    cluster: &Cluster,
    show_id: u64,
    acknowledged: &[(String, Vec<String>)],
) -> Result<usize> {
    let bookings = cluster.bookings(show_id).await?;
    let mut owner_of: BTreeMap<String, String> = BTreeMap::new();
    let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for booking in &bookings {
        let id = booking["booking_id"].as_str().unwrap_or_default().to_owned();
        for seat in seat_list(booking) {
            if let Some(other) = owner_of.insert(seat.clone(), id.clone()) {
                bail!("seat {seat} sold twice: bookings {other} and {id}");
            }
        }
        by_id.insert(id, seat_list(booking));
    }
    let sold: BTreeSet<String> =
        Cluster::seats_with_status(&cluster.seat_map(show_id).await?, "sold").into_iter().collect();
    let booked: BTreeSet<String> = owner_of.keys().cloned().collect();
    anyhow::ensure!(sold == booked, "sold seats {sold:?} != booked seats {booked:?}");
    for (id, seats) in acknowledged {
        let stored =
            by_id.get(id).ok_or_else(|| anyhow::anyhow!("acknowledged booking {id} lost"))?;
        anyhow::ensure!(stored == seats, "booking {id} seats changed: {seats:?} -> {stored:?}");
    }
    Ok(bookings.len())
}

/// Runs futures concurrently on the current task until all finish.
pub async fn join_all<F: std::future::Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in &mut pending {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    all_done = false;
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
