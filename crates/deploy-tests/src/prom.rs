//! A real Prometheus server under a guard, and backfilling its TSDB from OpenMetrics text.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http::{self, encode_component};
use crate::process::{ChildGuard, PROMETHEUS, PROMTOOL, free_loopback_port};
use crate::{Error, Result, log_tail};

/// Budget for one API call; loopback answers take milliseconds.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Between readiness polls.
const READY_POLL: Duration = Duration::from_millis(100);
/// Attempts with a fresh port when another process grabbed ours first.
const PORT_ATTEMPTS: usize = 3;

/// How to start a [`Prometheus`].
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    config_yaml: String,
    files: Vec<(String, String)>,
    storage: Option<PathBuf>,
    ready_timeout: Duration,
    alert_resend_delay: Duration,
    extra_args: Vec<String>,
}

impl PrometheusOptions {
    /// `config_yaml` is written as `prometheus.yml` in the server's working directory, so
    /// `rule_files` may name files added with [`PrometheusOptions::file`] relatively.
    pub fn new(config_yaml: impl Into<String>) -> Self {
        Self {
            config_yaml: config_yaml.into(),
            files: Vec::new(),
            storage: None,
            ready_timeout: Duration::from_secs(60),
            alert_resend_delay: Duration::from_secs(1),
            extra_args: Vec::new(),
        }
    }

    /// Writes `contents` to `name` next to `prometheus.yml` before starting.
    pub fn file(mut self, name: impl Into<String>, contents: impl Into<String>) -> Self {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// Serves an existing TSDB directory (e.g. filled by [`backfill_openmetrics`])
    /// instead of a fresh one.
    pub fn storage(mut self, path: impl Into<PathBuf>) -> Self {
        self.storage = Some(path.into());
        self
    }

    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// `--rules.alert.resend-delay`, 1s by default instead of Prometheus' 1m: an alert
    /// that fires before the notifier has discovered its Alertmanagers (discovery
    /// settles after ~5s) counts as sent, and would otherwise wait a minute for the
    /// next attempt.
    pub fn alert_resend_delay(mut self, delay: Duration) -> Self {
        self.alert_resend_delay = delay;
        self
    }

    /// Extra command-line flags, e.g. `--query.lookback-delta=1m`.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }
}

/// A running Prometheus on `127.0.0.1`, killed when dropped.
#[derive(Debug)]
pub struct Prometheus {
    // Declared before `workdir` so the process dies before its directory is removed.
    guard: ChildGuard,
    addr: SocketAddr,
    workdir: tempfile::TempDir,
}

/// One instant-query answer: `resultType` and `result` of the API's `data`.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub result_type: String,
    pub result: Value,
}

impl QueryResult {
    /// No series (vector/matrix) and no value (scalar/string never count as empty).
    pub fn is_empty(&self) -> bool {
        self.result.as_array().is_some_and(Vec::is_empty)
    }

    /// The series of a vector or matrix result.
    pub fn series(&self) -> &[Value] {
        self.result.as_array().map(Vec::as_slice).unwrap_or_default()
    }
}

impl Prometheus {
    /// Starts Prometheus and waits until `/-/ready` answers 200.
    pub fn start(options: PrometheusOptions) -> Result<Self> {
        let binary = PROMETHEUS.locate()?;
        let workdir = tempfile::tempdir().map_err(|e| Error::io("create Prometheus workdir", e))?;
        let config = workdir.path().join("prometheus.yml");
        std::fs::write(&config, &options.config_yaml).map_err(|e| Error::io("write prometheus.yml", e))?;
        for (name, contents) in &options.files {
            std::fs::write(workdir.path().join(name), contents)
                .map_err(|e| Error::io(format!("write {name}"), e))?;
        }
        let storage = options
            .storage
            .clone()
            .unwrap_or_else(|| workdir.path().join("data"));
        let log = workdir.path().join("prometheus.log");
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_loopback_port()?));
            let log_file = std::fs::File::create(&log).map_err(|e| Error::io("create Prometheus log", e))?;
            let log_err = log_file
                .try_clone()
                .map_err(|e| Error::io("duplicate Prometheus log", e))?;
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--web.enable-lifecycle")
                .arg(format!(
                    "--rules.alert.resend-delay={}ms",
                    options.alert_resend_delay.as_millis()
                ))
                .args(&options.extra_args)
                .current_dir(workdir.path())
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err)
                .spawn()
                .map_err(|e| Error::io(format!("spawn {}", binary.display()), e))?;
            let mut guard = ChildGuard::new("prometheus", child);
            match wait_ready("Prometheus", &mut guard, addr, &log, options.ready_timeout) {
                Ok(()) => return Ok(Self { guard, addr, workdir }),
                Err(Error::Exited { log: text, .. }) if text.contains("address already in use") => {
                    last_error = Some(text);
                }
                Err(other) => return Err(other),
            }
        }
        Err(Error::NotReady {
            server: "Prometheus",
            after: options.ready_timeout,
            log: last_error.unwrap_or_default(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's working directory (config, extra files, log).
    pub fn workdir(&self) -> &Path {
        self.workdir.path()
    }

    /// Evaluates `expr` at `time` (Unix seconds; `None` = now).
    pub fn query(&self, expr: &str, time: Option<f64>) -> Result<QueryResult> {
        let mut target = format!("/api/v1/query?query={}", encode_component(expr));
        if let Some(time) = time {
            target.push_str(&format!("&time={time:.3}"));
        }
        let data = self.api_data(&target)?;
        Ok(QueryResult {
            result_type: data["resultType"].as_str().unwrap_or_default().to_owned(),
            result: data["result"].clone(),
        })
    }

    /// The alerts the rule manager holds right now (pending and firing).
    pub fn alerts(&self) -> Result<Vec<Value>> {
        let data = self.api_data("/api/v1/alerts")?;
        Ok(data["alerts"].as_array().cloned().unwrap_or_default())
    }

    /// Values of `label` on series matching `selector` between `start` and `end` (Unix
    /// seconds): what Grafana's `label_values(selector, label)` shows.
    pub fn label_values(&self, label: &str, selector: &str, start: f64, end: f64) -> Result<Vec<String>> {
        let target = format!(
            "/api/v1/label/{}/values?match%5B%5D={}&start={start:.3}&end={end:.3}",
            encode_component(label),
            encode_component(selector)
        );
        let data = self.api_data(&target)?;
        Ok(data
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `data` of a successful answer to any GET of the HTTP API (`target` starts with
    /// `/api/v1/`); an error status or `"status": "error"` body is an error.
    pub fn api_data(&self, target: &str) -> Result<Value> {
        let response = http::get(self.addr, target, REQUEST_TIMEOUT)?;
        let body: Value = serde_json::from_str(&response.body).map_err(|source| Error::Decode {
            target: target.to_owned(),
            source,
        })?;
        if response.status != 200 || body["status"] != "success" {
            return Err(Error::Api {
                target: target.to_owned(),
                status: response.status,
                body: response.body,
            });
        }
        Ok(body["data"].clone())
    }

    /// The server log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.workdir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Stops the server now (dropping does the same).
    pub fn stop(mut self) {
        self.guard.stop();
    }
}

/// Polls `/-/ready` until 200, the process exits, or `timeout` passes.
pub(crate) fn wait_ready(
    server: &'static str,
    guard: &mut ChildGuard,
    addr: SocketAddr,
    log: &PathBuf,
    timeout: Duration,
) -> Result<()> {
    let rounds = timeout.as_millis() / READY_POLL.as_millis() + 1;
    for _ in 0..rounds {
        if let Some(status) = guard.try_status()? {
            return Err(Error::Exited {
                server,
                status,
                log: log_tail(log),
            });
        }
        let probe = http::get(addr, "/-/ready", READY_POLL.max(Duration::from_secs(1)));
        if probe.is_ok_and(|response| response.status == 200) {
            return Ok(());
        }
        std::thread::sleep(READY_POLL);
    }
    Err(Error::NotReady {
        server,
        after: timeout,
        log: log_tail(log),
    })
}

/// Turns OpenMetrics text (ending in `# EOF`, samples with timestamps) into TSDB blocks
/// under `storage` with `promtool tsdb create-blocks-from openmetrics`.
pub fn backfill_openmetrics(openmetrics: &str, storage: &Path, timeout: Duration) -> Result<()> {
    let input = storage.join("input.om");
    std::fs::create_dir_all(storage).map_err(|e| Error::io("create TSDB directory", e))?;
    std::fs::write(&input, openmetrics).map_err(|e| Error::io("write OpenMetrics input", e))?;
    let blocks = storage.join("blocks");
    let output = PROMTOOL.run(
        [
            "tsdb".as_ref(),
            "create-blocks-from".as_ref(),
            "openmetrics".as_ref(),
            input.as_os_str(),
            blocks.as_os_str(),
        ],
        storage,
        timeout,
    )?;
    if !output.success() {
        return Err(Error::Api {
            target: "promtool tsdb create-blocks-from openmetrics".into(),
            status: 0,
            body: output.transcript(),
        });
    }
    std::fs::remove_file(&input).map_err(|e| Error::io("remove OpenMetrics input", e))?;
    // Prometheus expects the block directories directly under its storage path.
    for entry in std::fs::read_dir(&blocks).map_err(|e| Error::io("list backfilled blocks", e))? {
        let entry = entry.map_err(|e| Error::io("list backfilled blocks", e))?;
        std::fs::rename(entry.path(), storage.join(entry.file_name()))
            .map_err(|e| Error::io("move a backfilled block", e))?;
    }
    std::fs::remove_dir(&blocks).map_err(|e| Error::io("remove the blocks directory", e))?;
    Ok(())
}

/// A test overlay for rule files: every `for:` duration becomes `duration`, so alerts
/// fire within seconds instead of minutes. Thresholds inside expressions are untouched.
pub fn override_for_durations(rules: &str, duration: &str) -> String {
    rules
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("for: ") {
                let indent = &line[..line.len() - trimmed.len()];
                format!("{indent}for: {duration}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect()
}
