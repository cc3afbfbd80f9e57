//! The compose cluster and the faults the nemesis injects into it, through the `docker` CLI.
//!
//! Every command targets only containers of our own compose project (looked up by service
//! name with `compose ps -q`), so a run never touches anything else on the machine.
//! Partitions are iptables rules inside a node container's network namespace, entered from the
//! host with `nsenter` (the image is `FROM scratch`: it has no iptables of its own).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A compose project of Marquee containers.
#[derive(Debug, Clone)]
pub struct Compose {
    /// The compose file.
    pub file: PathBuf,
    /// The project name (prefix of every container, network and volume).
    pub project: String,
    program: Vec<String>,
}

fn run(command: &mut Command) -> Result<String> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl Compose {
    /// A project using `file`; picks `docker compose` or `docker-compose`, whichever exists.
    ///
    /// # Errors
    /// Neither compose tool works.
    pub fn new(file: PathBuf, project: &str) -> Result<Compose> {
        let program = if Command::new("docker")
            .args(["compose", "version"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            vec!["docker".to_owned(), "compose".to_owned()]
        } else if Command::new("docker-compose")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            vec!["docker-compose".to_owned()]
        } else {
            bail!("neither `docker compose` nor `docker-compose` is available");
        };
        Ok(Compose { file, project: project.to_owned(), program })
    }

    fn compose(&self) -> Command {
        let mut command = Command::new(&self.program[0]);
        command.args(&self.program[1..]);
        command.arg("-f").arg(&self.file).arg("-p").arg(&self.project);
        command
    }

    /// Starts the project with `env` set for compose's variable substitution.
    ///
    /// # Errors
    /// Compose failed.
    pub fn up(&self, env: &BTreeMap<String, String>) -> Result<()> {
        run(self.compose().envs(env).args(["up", "-d"]))?;
        Ok(())
    }

    /// Removes the project's containers, network and volumes (best effort, idempotent).
    pub fn down(&self) {
        let _ = run(self.compose().args(["down", "-v", "--remove-orphans", "-t", "5"]));
    }

    /// The container id of a service.
    ///
    /// # Errors
    /// The service has no container.
    pub fn container(&self, service: &str) -> Result<String> {
        let id = run(self.compose().args(["ps", "-q", service]))?;
        let id = id.lines().next().unwrap_or_default().to_owned();
        if id.is_empty() {
            bail!("service {service} has no container");
        }
        Ok(id)
    }

    fn inspect(&self, service: &str, format: &str) -> Result<String> {
        let id = self.container(service)?;
        run(Command::new("docker").args(["inspect", "-f", format, &id]))
    }

    /// The service's IP address on the project network.
    ///
    /// # Errors
    /// Not running.
    pub fn ip(&self, service: &str) -> Result<String> {
        let ip =
            self.inspect(service, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")?;
        if ip.is_empty() {
            bail!("{service} has no IP address (not running?)");
        }
        Ok(ip)
    }

    fn pid(&self, service: &str) -> Result<String> {
        let pid = self.inspect(service, "{{.State.Pid}}")?;
        if pid == "0" || pid.is_empty() {
            bail!("{service} is not running");
        }
        Ok(pid)
    }

    /// Runs a binary of the image inside a service's container (no shell in the image).
    ///
    /// # Errors
    /// The command failed.
    pub fn exec(&self, service: &str, args: &[&str]) -> Result<String> {
        let id = self.container(service)?;
        run(Command::new("docker").arg("exec").arg(&id).args(args))
    }

    /// Like [`Compose::exec`], with environment variables set for the command (for secrets
    /// that must not appear in argument lists).
    ///
    /// # Errors
    /// The command failed.
    pub fn exec_env(&self, service: &str, env: &[(&str, &str)], args: &[&str]) -> Result<String> {
        let id = self.container(service)?;
        let mut command = Command::new("docker");
        command.arg("exec");
        for (name, _) in env {
            command.arg("-e").arg(name);
        }
        command.envs(env.iter().copied()).arg(&id).args(args);
        run(&mut command)
    }

    /// SIGKILLs a service's container.
    ///
    /// # Errors
    /// Docker failed.
    pub fn kill(&self, service: &str) -> Result<()> {
        let id = self.container(service)?;
        run(Command::new("docker").args(["kill", "-s", "KILL", &id]))?;
        Ok(())
    }

    /// Starts a stopped service's container (idempotent).
    ///
    /// # Errors
    /// Docker failed.
    pub fn start(&self, service: &str) -> Result<()> {
        let id = self.container(service)?;
        run(Command::new("docker").args(["start", &id]))?;
        Ok(())
    }

    /// Freezes (`true`) or thaws a service's processes (`docker pause`, the cgroup freezer).
    ///
    /// # Errors
    /// Docker failed.
    pub fn pause(&self, service: &str, pause: bool) -> Result<()> {
        let id = self.container(service)?;
        run(Command::new("docker").args([if pause { "pause" } else { "unpause" }, &id]))?;
        Ok(())
    }

    /// Whether a service's container is paused.
    pub fn is_paused(&self, service: &str) -> bool {
        self.inspect(service, "{{.State.Paused}}").is_ok_and(|s| s == "true")
    }

    /// Sets a node's wall-clock offset (libfaketime syntax, e.g. `+30s`, `-20s`, `+0s`) by
    /// writing the file the node's libfaketime reads every second.
    ///
    /// # Errors
    /// The file could not be copied into the container.
    pub fn skew_clock(&self, service: &str, offset: &str) -> Result<()> {
        let id = self.container(service)?;
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), format!("{offset}\n"))?;
        let source = file.path().to_string_lossy().into_owned();
        run(Command::new("docker").args(["cp", &source, &format!("{id}:/data/faketime")]))?;
        Ok(())
    }

    /// Cuts traffic between `service` and each of `peers` (both directions, inside the
    /// service's network namespace).
    ///
    /// # Errors
    /// nsenter or iptables failed.
    pub fn cut(&self, service: &str, peers: &[&str]) -> Result<()> {
        let pid = self.pid(service)?;
        for peer in peers {
            let ip = self.ip(peer)?;
            for (chain, flag) in [("INPUT", "-s"), ("OUTPUT", "-d")] {
                run(Command::new("nsenter")
                    .args(["-t", &pid, "-n", "iptables", "-A", chain, flag, &ip, "-j", "DROP"]))?;
            }
        }
        Ok(())
    }

    /// Removes every partition rule of a service (idempotent; skips a stopped container).
    pub fn heal_network(&self, service: &str) {
        if let Ok(pid) = self.pid(service) {
            for chain in ["INPUT", "OUTPUT"] {
                let _ =
                    run(Command::new("nsenter").args(["-t", &pid, "-n", "iptables", "-F", chain]));
            }
        }
    }
}
