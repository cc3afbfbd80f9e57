//! The operating-system side of the harness: where the built binaries are, free loopback
//! ports, and the `marquee-node`, `marquee-gateway` and `marquee-payments` child processes
//! (spawn, signal, kill, reap), with the [`Options`] (flags) they start with. Everything that
//! owns a PID lives here, so a test that kills or pauses a process and the [`Drop`] impls that
//! clean up after a failed test share one code path.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Secret test gateways sign access tokens with (shared, so any gateway accepts any token).
pub const JWT_SECRET: &str = "marquee-test-jwt-secret-0123456789abcdef";

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
/// Never the same port twice in one test process: the OS may hand a just-released port out
/// again, and two processes of one cluster given the same port failed to start ("Address
/// already in use") often enough to flake the suite.
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The arguments of `args` that `binary` knows (a `--name` its `--help` lists): an older
/// release started with this build's flags would refuse an unknown one.
///
/// # Errors
/// `binary --help` failed.
pub fn known_args(binary: &Path, args: &[String]) -> Result<Vec<String>> {
    let help = Command::new(binary)
        .arg("--help")
        .output()
        .with_context(|| format!("{} --help", binary.display()))?;
    anyhow::ensure!(help.status.success(), "{} --help failed", binary.display());
    let help = String::from_utf8_lossy(&help.stdout);
    let known = |arg: &str| {
        let name = arg.split('=').next().unwrap_or(arg);
        help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).any(|word| word == name)
    };
    Ok(args.iter().filter(|arg| !arg.starts_with("--") || known(arg)).cloned().collect())
}

/// The binaries of the previous release (`scripts/test` builds them: docs/operations.md,
/// "Rolling restart and upgrade"), from `$MARQUEE_PREVIOUS_RELEASE_BIN`.
///
/// # Errors
/// Not set, or the directory lacks a binary.
pub fn previous_release_dir() -> Result<PathBuf> {
    let dir = std::env::var_os("MARQUEE_PREVIOUS_RELEASE_BIN").map(PathBuf::from).context(
        "MARQUEE_PREVIOUS_RELEASE_BIN is not set: scripts/test builds the previous release's \
         binaries and sets it (or build them as docs/operations.md says)",
    )?;
    for bin in ["marquee-node", "marquee-gateway", "marqueectl"] {
        anyhow::ensure!(dir.join(bin).exists(), "{} not found", dir.join(bin).display());
    }
    Ok(dir)
}

/// libfaketime's multi-threaded library (Debian package `libfaketime`; `scripts/test` installs
/// it), or `$MARQUEE_FAKETIME_LIB`.
///
/// # Errors
/// Not installed.
pub fn faketime_library() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MARQUEE_FAKETIME_LIB") {
        return Ok(PathBuf::from(path));
    }
    let found = std::fs::read_dir("/usr/lib")?
        .flatten()
        .map(|arch| arch.path().join("faketime/libfaketimeMT.so.1"))
        .find(|path| path.exists());
    found.context(
        "libfaketime is not installed (apt-get install libfaketime; scripts/test installs it)",
    )
}

/// The environment that runs a process under libfaketime with its wall clock offset read from
/// `file` (libfaketime syntax, e.g. `+120s`; re-read every second; no file, no offset).
/// Monotonic time is left alone, as on a real machine whose wall clock is wrong.
///
/// # Errors
/// libfaketime is not installed.
pub fn faketime_env(file: &Path) -> Result<Vec<(String, String)>> {
    Ok(vec![
        ("LD_PRELOAD".into(), faketime_library()?.display().to_string()),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
        ("FAKETIME_CACHE_DURATION".into(), "1".into()),
    ])
}

/// One node process.
pub struct Node {
    /// Node id.
    pub id: u64,
    /// gRPC address.
    pub grpc: String,
    /// HTTP address.
    pub http: String,
    pub(crate) args: Vec<String>,
    /// Extra environment (libfaketime's, with [`Options::faketime`]).
    pub(crate) env: Vec<(String, String)>,
    /// Its data directory is a tmpfs of this many MiB ([`Options::small_disk`]).
    pub(crate) tmpfs_mb: Option<u64>,
    pub(crate) child: Mutex<Option<Child>>,
    pub(crate) log: PathBuf,
    /// Runs an older release's `marquee-node` from this directory instead of this build's
    /// ([`Options::release`]) until [`crate::Cluster::upgrade`] clears it.
    pub(crate) release: Mutex<Option<PathBuf>>,
}

impl Node {
    /// Starts the process (again) with the node's arguments, appending to its log: this
    /// build's binary from `bins`, or the older release's it runs (without the flags that
    /// release does not know).
    pub(crate) fn spawn(&self, bins: &Path) -> Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let release =
            self.release.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let node = release.as_deref().unwrap_or(bins).join("marquee-node");
        let args = match &release {
            Some(_) => known_args(&node, &self.args)?,
            None => self.args.clone(),
        };
        let mut command = match self.tmpfs_mb {
            None => Command::new(node),
            Some(mb) => {
                // A private mount namespace (an unprivileged user namespace where needed), a
                // size-limited tmpfs on the data directory, then exec the node: same pid.
                let mut command = Command::new("unshare");
                command.args(["-rm", "--", "sh", "-c"]).arg(format!(
                    "mkdir -p \"$0\" && mount -t tmpfs -o size={mb}m tmpfs \"$0\" && exec \"$@\""
                ));
                command.arg(self.data_dir()?).arg(node);
                command
            }
        };
        let child = command
            .args(&args)
            .env("MARQUEE_LOG", "info,openraft=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
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

    /// Sets `--name=value` for the node's next start, replacing an earlier value (a new
    /// `--data-dir`, `--restore-from`, ...).
    pub fn set_flag(&mut self, name: &str, value: &str) {
        let prefix = format!("--{name}=");
        self.args.retain(|arg| !arg.starts_with(&prefix));
        self.args.push(format!("{prefix}{value}"));
    }

    /// The node's command-line arguments.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The node's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Its `--data-dir`.
    ///
    /// # Errors
    /// The node was built without one.
    pub fn data_dir(&self) -> Result<PathBuf> {
        self.args
            .iter()
            .find_map(|arg| arg.strip_prefix("--data-dir="))
            .map(PathBuf::from)
            .context("node has no --data-dir")
    }

    /// Its data directory as this process can reach it: through `/proc/<pid>/root` when the
    /// node runs in its own mount namespace ([`Options::small_disk`]), so files written there
    /// land on the node's size-limited filesystem.
    ///
    /// # Errors
    /// Not running, or no data dir.
    pub fn data_dir_outside(&self) -> Result<PathBuf> {
        let dir = self.data_dir()?;
        if self.tmpfs_mb.is_none() {
            return Ok(dir);
        }
        let pid = self.lock().as_ref().context("node not running")?.id();
        let relative = dir.strip_prefix("/").context("data dir is relative")?;
        Ok(PathBuf::from(format!("/proc/{pid}/root")).join(relative))
    }

    /// Its process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    /// Whether the process has exited (reaping it), with its exit code.
    pub fn exited(&self) -> Option<Option<i32>> {
        let mut guard = self.lock();
        let exit = guard.as_mut()?.try_wait().ok()??;
        *guard = None;
        Some(exit.code())
    }

    /// How the process ended, if it has (exit code or signal), without forgetting it: for
    /// error messages about a node that stopped answering.
    pub fn exit_status(&self) -> Option<String> {
        let mut guard = self.lock();
        let status = guard.as_mut()?.try_wait().ok()??;
        Some(status.to_string())
    }

    /// The older release's binaries it runs, if it does ([`Options::release`]).
    pub fn release(&self) -> Option<PathBuf> {
        self.release.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
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
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An extra gateway process started by [`Cluster::spawn_gateway`](crate::Cluster::spawn_gateway); SIGKILLed when dropped.
pub struct Gateway {
    /// Base URL, e.g. `http://127.0.0.1:12345`.
    pub url: String,
    pub(crate) child: Mutex<Option<Child>>,
    pub(crate) log: PathBuf,
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
            print_log_tail(&self.log);
        }
        self.kill();
    }
}

/// Starts a gateway on a free port against `nodes`, with the gateway options of `options`.
pub(crate) fn spawn_gateway_process(
    bins: &Path,
    log: &Path,
    nodes: &[String],
    payments_url: Option<&str>,
    options: &Options,
) -> Result<(Child, String)> {
    let port = free_port();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let binary = options.release.as_deref().unwrap_or(bins).join("marquee-gateway");
    let mut command = Command::new(&binary);
    // Tests drive many requests from one loopback address: rate limits only where a test asks.
    command.env("MARQUEE_GATEWAY_RATE_LIMIT_IP_PER_S", options.rate_limit_ip_per_s.to_string());
    command.env("MARQUEE_GATEWAY_RATE_LIMIT_USER_PER_S", options.rate_limit_user_per_s.to_string());
    // Likewise the hold and registration rates (a test opts in through `gateway_env`).
    for rate in [
        "MARQUEE_GATEWAY_HOLD_RATE_USER_PER_MIN",
        "MARQUEE_GATEWAY_HOLD_RATE_IP_PER_MIN",
        "MARQUEE_GATEWAY_REGISTER_RATE_IP_PER_MIN",
    ] {
        command.env(rate, "0");
    }
    command.env("MARQUEE_JWT_SECRET", JWT_SECRET);
    command.envs(options.gateway_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut args = vec![
        format!("--listen=127.0.0.1:{port}"),
        format!("--nodes={}", nodes.join(",")),
        format!("--checkout-window-ms={}", options.checkout_window_ms),
        format!("--payment-timeout-ms={}", options.payment_timeout_ms),
        format!("--sweep-interval-ms={}", options.sweep_interval_ms),
        format!("--sweep-min-age-ms={}", options.sweep_min_age_ms),
    ];
    if let Some(url) = payments_url {
        args.push(format!("--payments-url={url}"));
    }
    if options.release.is_some() {
        args = known_args(&binary, &args)?;
    }
    command.args(args);
    let child = command
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .context("spawning marquee-gateway")?;
    Ok((child, format!("http://127.0.0.1:{port}")))
}

/// Starts `marquee-payments` on a free port; returns the child and its base URL.
pub(crate) fn spawn_payments(bins: &Path, log: &Path) -> Result<(Child, String)> {
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

/// Prints the last 30 lines of a process log to stderr (for a failed test's output).
pub(crate) fn print_log_tail(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    eprintln!("---- tail of {} ----\n{tail}", log.display());
}

/// Options of a test cluster: the flags its node, gateway and payment processes start with.
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
    /// `--placement-interval-s` of every node: 0 (off) by default, so tests that place leaders
    /// themselves are not raced by the meta leader's own balancing; the placement tests turn
    /// it on.
    pub placement_interval_s: u64,
    /// `--repair-after-s` of every node.
    pub repair_after_s: u64,
    /// Run the nodes under libfaketime, so a test can set a node's wall clock wrong
    /// ([`crate::Cluster::skew_clock`]).
    pub faketime: bool,
    /// `(node id, MiB)`: that node's data directory is a tmpfs of that size in a private mount
    /// namespace (`unshare -rm`), so a test can fill its disk
    /// ([`Node::data_dir_outside`]). The data lives as long as the process (a restart in place
    /// keeps it; a new process starts empty).
    pub small_disk: Option<(u64, u64)>,
    /// `--zone` of node `i + 1`, for the first `zones.len()` nodes.
    pub zones: Vec<&'static str>,
    /// Start every node and the gateway with an older release's binaries from this directory
    /// (flags it does not know are left out); [`crate::Cluster::upgrade`] moves a node to this
    /// build's.
    pub release: Option<PathBuf>,
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
            faketime: false,
            small_disk: None,
            zones: Vec::new(),
            release: None,
            placement_interval_s: 0,
            repair_after_s: 300,
        }
    }
}
