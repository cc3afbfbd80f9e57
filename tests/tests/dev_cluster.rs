//! `scripts/marquee-dev`, run as a user runs it (README, "Break it"): the one-command dev
//! cluster keeps serving when a node dies, and its commands from another terminal kill and
//! start a node. The script runs on free ports in a temporary data directory with
//! `MARQUEE_SEED=0` (no demo catalog) and `MARQUEE_DEV_BUILD=0` (the binaries cargo built for
//! this test run); the test kills the leader of a show's shard, books through the gateway while
//! it is down, starts it again, waits for it to catch up, stops the script and checks that no
//! process of it is left. Whatever happens, every process it started is ended on the way out.

// Test code: a panic is how a helper reports a failed check.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::{bin_dir, create_show_via, eventually};

const ADMIN_EMAIL: &str = "admin@dev.test";
const ADMIN_PASSWORD: &str = "dev-admin-password";
const DEMO_EMAIL: &str = "demo@dev.test";
const DEMO_PASSWORD: &str = "dev-demo-password";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("scripts/marquee-dev")
}

/// A base port such that base+1..=base+3 are free (the script's nodes take base+N).
fn free_port_block() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + rand::random::<u16>() % 40_000;
        let held: Vec<TcpListener> =
            (1..=3).filter_map(|n| TcpListener::bind(("127.0.0.1", base + n)).ok()).collect();
        if held.len() == 3 {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

/// Whether process `pid` is alive (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(") ").next().map(|rest| !rest.starts_with('Z')))
        .unwrap_or(false)
}

fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
}

/// The running script and its data directory; dropping it stops the script and then SIGKILLs
/// any process whose pid file is still in the data directory.
struct DevCluster {
    script: Child,
    data: tempfile::TempDir,
    output: PathBuf,
    env: Vec<(&'static str, String)>,
    grpc_base: u16,
    http_base: u16,
    url: String,
    http: reqwest::Client,
}

impl DevCluster {
    fn start() -> DevCluster {
        let data = tempfile::tempdir().unwrap();
        let (grpc_base, http_base) = (free_port_block(), free_port_block());
        let gateway_port = tests::free_port();
        let target = bin_dir().parent().unwrap().to_path_buf();
        let env = vec![
            ("MARQUEE_DATA", data.path().join("dev").display().to_string()),
            ("MARQUEE_SEED", "0".into()),
            ("MARQUEE_DEV_BUILD", "0".into()),
            ("CARGO_TARGET_DIR", target.display().to_string()),
            ("MARQUEE_DEV_GRPC_PORT_BASE", grpc_base.to_string()),
            ("MARQUEE_DEV_HTTP_PORT_BASE", http_base.to_string()),
            ("MARQUEE_GATEWAY_PORT", gateway_port.to_string()),
            ("MARQUEE_SHARDS", "2".into()),
            ("MARQUEE_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("MARQUEE_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ("MARQUEE_DEMO_EMAIL", DEMO_EMAIL.into()),
            ("MARQUEE_DEMO_PASSWORD", DEMO_PASSWORD.into()),
        ];
        let output = data.path().join("marquee-dev.out");
        let log = std::fs::File::create(&output).unwrap();
        let script = Command::new("bash")
            .arg(script())
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        DevCluster {
            script,
            data,
            output,
            env,
            grpc_base,
            http_base,
            url: format!("http://127.0.0.1:{gateway_port}"),
            http: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.data.path().join("dev")
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Runs `scripts/marquee-dev ARGS` as from another terminal (bounded by its own timeouts).
    fn command(&self, args: &[&str]) -> Output {
        Command::new("bash")
            .arg(script())
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Like [`DevCluster::command`], requiring success; returns stdout and stderr.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.command(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "marquee-dev {args:?} failed: {text}");
        text
    }

    /// The pid in a pid file of the data directory.
    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir().join(name)).ok()?.trim().parse().ok()
    }

    /// `marqueectl status --json` against the dev cluster's nodes.
    async fn ctl_status(&self) -> anyhow::Result<Value> {
        let nodes: Vec<String> =
            (1..=3).map(|n| format!("127.0.0.1:{}", self.grpc_base + n)).collect();
        let output = tokio::process::Command::new(bin_dir().join("marqueectl"))
            .arg(format!("--nodes={}", nodes.join(",")))
            .args(["status", "--json"])
            .output()
            .await?;
        anyhow::ensure!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        Ok(serde_json::from_slice(&output.stdout)?)
    }

    async fn group(&self, group: u64) -> anyhow::Result<Value> {
        let status = self.ctl_status().await?;
        let groups = status["groups"].as_array().cloned().unwrap_or_default();
        groups
            .into_iter()
            .find(|g| g["group"] == group)
            .ok_or_else(|| anyhow::anyhow!("no group {group} in {status}"))
    }

    /// The largest `replication_lag` any running node reports for `group` (only its leader
    /// reports a non-zero one).
    async fn replication_lag(&self, group: u64) -> u64 {
        let series = format!("marquee_node_raft{{field=\"replication_lag\",group=\"{group}\"}} ");
        let mut lag = 0;
        for n in 1..=3 {
            let url = format!("http://127.0.0.1:{}/metrics", self.http_base + n);
            let Ok(response) = self.http.get(url).send().await else { continue };
            let text = response.text().await.unwrap_or_default();
            let value = text.lines().find_map(|l| l.strip_prefix(&series)?.trim().parse().ok());
            lag = lag.max(value.unwrap_or(0));
        }
        lag
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let response = self
            .http
            .post(format!("{}/v1/auth/login", self.url))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login {email}");
        response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
    }

    /// Holds one seat of `show` and books it; returns the status and body of the hold if it
    /// failed, else of the booking.
    async fn book_one(&self, token: &str, show: u64, key: &str) -> anyhow::Result<(u16, Value)> {
        let hold = self
            .http
            .post(format!("{}/v1/shows/{show}/holds", self.url))
            .bearer_auth(token)
            .json(&json!({"quantity": 1, "category": "standard"}))
            .send()
            .await?;
        let status = hold.status().as_u16();
        let hold: Value = hold.json().await.unwrap_or(Value::Null);
        if status != 201 {
            return Ok((status, hold));
        }
        let booking = self
            .http
            .post(format!("{}/v1/bookings", self.url))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&json!({"hold_id": hold["hold_id"], "payment_token": "tok_success"}))
            .send()
            .await?;
        let status = booking.status().as_u16();
        let body = booking.json().await.unwrap_or(Value::Null);
        if status != 201 {
            // Give the seat back, so failed attempts do not use up the account's hold limit.
            let release =
                format!("{}/v1/holds/{}", self.url, hold["hold_id"].as_str().unwrap_or(""));
            let _ = self.http.delete(release).bearer_auth(token).send().await;
        }
        Ok((status, body))
    }

    /// Waits (bounded) for the script to exit; true if it did.
    fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.script.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- marquee-dev output ----\n{}", self.output());
            for log in ["node1.log", "node2.log", "node3.log", "gateway.log"] {
                let text = std::fs::read_to_string(self.dir().join(log)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "---- tail of {log} ----\n{}",
                    lines[lines.len().saturating_sub(20)..].join("\n")
                );
            }
        }
        if self.script.try_wait().ok().flatten().is_none() {
            signal(self.script.id(), "TERM");
            if !self.wait_exit(Duration::from_secs(45)) {
                let _ = self.script.kill();
                let _ = self.script.wait();
            }
        }
        // Whatever the script could not stop: only processes whose command line names this
        // data directory, so a reused pid is never hit.
        let dir = self.dir().display().to_string();
        for name in ["node1.pid", "node2.pid", "node3.pid", "gateway.pid"] {
            if let Some(pid) = self.pid(name) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                let ours = cmdline.contains(&dir)
                    || (name == "gateway.pid" && cmdline.contains("marquee-gateway"));
                if ours && alive(pid) {
                    signal(pid, "KILL");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_cluster_survives_a_killed_leader_and_the_node_catches_up_when_started() {
    let mut dev = DevCluster::start();
    // Up: the gateway is ready and the script has printed its banner (setup done).
    let ready = format!("{}/readyz", dev.url);
    eventually("marquee-dev up", Duration::from_secs(120), || async {
        let up = dev.http.get(&ready).send().await.is_ok_and(|r| r.status() == 200);
        Ok((up && dev.output().contains("Press Ctrl-C to stop.")).then_some(()))
    })
    .await
    .unwrap();
    assert!(dev.output().contains(&format!("Marquee is running at {}", dev.url)));

    // Commands refuse what they cannot do, and say why.
    let unknown = dev.command(&["node", "kill", "7"]);
    assert!(!unknown.status.success(), "node 7 does not exist");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown node '7'"));
    assert!(dev.ok(&["node", "start", "2"]).contains("node 2 is already running"));
    let status = dev.ok(&["status"]);
    for n in 1..=3 {
        assert!(status.contains(&format!("node {n}     running")), "{status}");
    }
    assert!(
        status.contains("GROUP") && status.contains("inventory"),
        "marqueectl status: {status}"
    );

    // A show, and the node leading its shard.
    let admin = dev.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let created =
        create_show_via(&dev.http, &dev.url, &admin, 4, 10, 4_102_444_800_000).await.unwrap();
    let (show, group) = (created["show_id"].as_u64().unwrap(), created["group"].as_u64().unwrap());
    let customer = dev.login(DEMO_EMAIL, DEMO_PASSWORD).await;
    let (status, body) = dev.book_one(&customer, show, "before-kill").await.unwrap();
    assert_eq!(status, 201, "a booking before anything breaks: {body}");
    let leader = eventually("the shard's leader", Duration::from_secs(30), || async {
        Ok(dev.group(group).await?["leader"].as_u64())
    })
    .await
    .unwrap();
    let leader_pid = dev.pid(&format!("node{leader}.pid")).unwrap();

    // Kill it: SIGKILL, as a crash.
    let killed = dev.ok(&["node", "kill", &leader.to_string()]);
    assert!(killed.contains(&format!("node {leader} killed")), "{killed}");
    assert!(!alive(leader_pid), "node {leader} (pid {leader_pid}) is gone");
    assert!(
        dev.ok(&["node", "kill", &leader.to_string()]).contains("is not running"),
        "killing a dead node again changes nothing"
    );
    eventually("the script to notice", Duration::from_secs(10), || async {
        Ok(dev.output().contains(&format!("node {leader} is down")).then_some(()))
    })
    .await
    .unwrap();
    assert!(dev.script.try_wait().unwrap().is_none(), "marquee-dev keeps running");

    // Bookings go on: once the shard has elected another leader, every booking succeeds.
    let mut attempt = 0;
    eventually("a booking with the leader dead", Duration::from_secs(30), || {
        attempt += 1;
        let key = format!("failover-{attempt}");
        let (dev, customer) = (&dev, &customer);
        async move { Ok((dev.book_one(customer, show, &key).await?.0 == 201).then_some(())) }
    })
    .await
    .unwrap();
    for i in 0..5 {
        let (status, body) = dev.book_one(&customer, show, &format!("degraded-{i}")).await.unwrap();
        assert_eq!(status, 201, "booking {i} with node {leader} down: {body}");
    }
    let during = dev.group(group).await.unwrap();
    assert_ne!(during["leader"].as_u64(), Some(leader), "another node leads shard {group}");
    let last_index = during["last_log_index"].as_u64().unwrap();
    let lag = dev.replication_lag(group).await;
    assert!(lag > 0, "the new leader reports the entries the dead replica missed: {lag}");

    // Start it again: it rejoins with the same data and catches up on what it missed.
    let started = dev.ok(&["node", "start", &leader.to_string()]);
    assert!(started.contains(&format!("node {leader} started")), "{started}");
    eventually("the restarted node to catch up", Duration::from_secs(60), || async {
        let group = dev.group(group).await?;
        let applied = group["applied"][leader.to_string()].as_u64();
        Ok(applied.is_some_and(|a| a >= last_index).then_some(()))
    })
    .await
    .unwrap();
    eventually("the leader to report no lag", Duration::from_secs(30), || async {
        Ok((dev.replication_lag(group).await == 0).then_some(()))
    })
    .await
    .unwrap();
    eventually("the script to notice it back", Duration::from_secs(10), || async {
        Ok(dev.output().contains(&format!("node {leader} is running again")).then_some(()))
    })
    .await
    .unwrap();
    let (status, body) = dev.book_one(&customer, show, "after-restart").await.unwrap();
    assert_eq!(status, 201, "a booking after the restart: {body}");
    let restarted = dev.ok(&["node", "restart", &leader.to_string()]);
    assert!(restarted.contains(&format!("node {leader} stopped")), "{restarted}");
    assert!(restarted.contains(&format!("node {leader} started")), "{restarted}");

    // Stop it from another terminal: the script ends and takes every process with it.
    let pids: Vec<u32> = ["node1.pid", "node2.pid", "node3.pid", "gateway.pid"]
        .iter()
        .map(|name| dev.pid(name).unwrap_or_else(|| panic!("{name} while running")))
        .collect();
    assert!(dev.ok(&["stop"]).contains("dev cluster stopped"));
    assert!(dev.wait_exit(Duration::from_secs(45)), "marquee-dev exited");
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the dev cluster is left behind");
    }
    for name in ["node1.pid", "node2.pid", "node3.pid", "gateway.pid", "marquee-dev.pid"] {
        assert!(!dev.dir().join(name).exists(), "{name} removed");
    }
    let status = dev.ok(&["status"]);
    assert!(status.contains("the dev cluster is not running"), "{status}");
    assert!(
        status.contains("node 1     stopped") && status.contains("gateway    stopped"),
        "{status}"
    );
    let after = dev.command(&["node", "start", "1"]);
    assert!(!after.status.success(), "no node starts without the dev cluster");
    assert!(String::from_utf8_lossy(&after.stderr).contains("the dev cluster is not running"));
}
