//! A real Alertmanager under a guard, clustering off, on a loopback port.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http;
use crate::process::{ALERTMANAGER, ChildGuard, free_loopback_port};
use crate::prom::wait_ready;
use crate::{Error, Result};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: usize = 3;

/// A running Alertmanager, killed when dropped.
#[derive(Debug)]
pub struct Alertmanager {
    // Declared before `workdir` so the process dies before its directory is removed.
    guard: ChildGuard,
    addr: SocketAddr,
    workdir: tempfile::TempDir,
}

impl Alertmanager {
    /// Writes `config_yaml` as `alertmanager.yml`, starts the server and waits until
    /// `/-/ready` answers 200 (at most `ready_timeout`).
    pub fn start(config_yaml: &str, ready_timeout: Duration) -> Result<Self> {
        let binary = ALERTMANAGER.locate()?;
        let workdir = tempfile::tempdir().map_err(|e| Error::io("create Alertmanager workdir", e))?;
        let config = workdir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml).map_err(|e| Error::io("write alertmanager.yml", e))?;
        let log = workdir.path().join("alertmanager.log");
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_loopback_port()?));
            let log_file =
                std::fs::File::create(&log).map_err(|e| Error::io("create Alertmanager log", e))?;
            let log_err = log_file
                .try_clone()
                .map_err(|e| Error::io("duplicate Alertmanager log", e))?;
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    workdir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                // An empty address turns the gossip cluster off; it would bind 0.0.0.0:9094.
                .arg("--cluster.listen-address=")
                .current_dir(workdir.path())
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err)
                .spawn()
                .map_err(|e| Error::io(format!("spawn {}", binary.display()), e))?;
            let mut guard = ChildGuard::new("alertmanager", child);
            match wait_ready("Alertmanager", &mut guard, addr, &log, ready_timeout) {
                Ok(()) => return Ok(Self { guard, addr, workdir }),
                Err(Error::Exited { log: text, .. }) if text.contains("address already in use") => {
                    last_error = Some(text);
                }
                Err(other) => return Err(other),
            }
        }
        Err(Error::NotReady {
            server: "Alertmanager",
            after: ready_timeout,
            log: last_error.unwrap_or_default(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// Posts alerts (a JSON array in the v2 API's `postableAlerts` shape).
    pub fn post_alerts(&self, alerts: &Value) -> Result<()> {
        let target = "/api/v2/alerts";
        let response = http::post(
            self.addr,
            target,
            "application/json",
            &alerts.to_string(),
            REQUEST_TIMEOUT,
        )?;
        if response.status != 200 {
            return Err(Error::Api {
                target: target.into(),
                status: response.status,
                body: response.body,
            });
        }
        Ok(())
    }

    /// The alerts Alertmanager holds now (v2 API `gettableAlerts`).
    /// The alerts held, once `settled` says they are as expected or `within` has passed
    /// (then as they are, for the assertion to show). Alertmanager applies inhibitions on
    /// a goroutine of its own after accepting a post, and offers nothing to wait on but
    /// its API: a read right after the post can still show an inhibited alert active.
    pub fn alerts_once(&self, settled: impl Fn(&[Value]) -> bool, within: Duration) -> Result<Vec<Value>> {
        const POLL: Duration = Duration::from_millis(50);
        let rounds = within.as_millis() / POLL.as_millis() + 1;
        for _ in 0..rounds {
            let held = self.alerts()?;
            if settled(&held) {
                return Ok(held);
            }
            std::thread::sleep(POLL);
        }
        self.alerts()
    }

    pub fn alerts(&self) -> Result<Vec<Value>> {
        let target = "/api/v2/alerts";
        let response = http::get(self.addr, target, REQUEST_TIMEOUT)?;
        if response.status != 200 {
            return Err(Error::Api {
                target: target.into(),
                status: response.status,
                body: response.body,
            });
        }
        let value: Value = serde_json::from_str(&response.body).map_err(|source| Error::Decode {
            target: target.into(),
            source,
        })?;
        Ok(value.as_array().cloned().unwrap_or_default())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("alertmanager.log")).unwrap_or_default()
    }

    pub fn stop(mut self) {
        self.guard.stop();
    }
}
