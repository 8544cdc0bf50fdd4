//! Finding the tools (Prometheus' from Debian, Helm from the Go module proxy), running
//! them with a time budget, and a guard that kills a server process when it goes out of
//! scope.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::{Error, Result};

/// How often a running tool is polled for exit; small next to every budget used here.
const POLL: Duration = Duration::from_millis(20);

/// An executable the tests drive.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// Names to look for on `PATH`, in order (Debian renames some upstream binaries).
    pub names: &'static [&'static str],
    /// Where it comes from, named in the error when it is missing.
    pub install: Install,
}

/// How a missing [`Tool`] is installed; `.ci/test` does it on a fresh machine.
#[derive(Debug, Clone, Copy)]
pub enum Install {
    /// A Debian package.
    Debian(&'static str),
    /// A Go module path at a version, for `go install`. The tool is also looked for in
    /// `$GOBIN`, `$GOPATH/bin` and `~/go/bin`, where `go install` puts it.
    Go(&'static str),
}

impl std::fmt::Display for Install {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Install::Debian(package) => write!(
                f,
                "install the Debian package `{package}` (apt-get update && apt-get install -y {package})"
            ),
            Install::Go(module) => write!(
                f,
                "install it with `go install {module}` (`bash .ci/test` does, and puts \
                 $(go env GOPATH)/bin on PATH)"
            ),
        }
    }
}

pub const PROMTOOL: Tool = Tool {
    names: &["promtool"],
    install: Install::Debian("prometheus"),
};
pub const PROMETHEUS: Tool = Tool {
    names: &["prometheus"],
    install: Install::Debian("prometheus"),
};
/// Debian installs upstream's `alertmanager` as `prometheus-alertmanager`.
pub const ALERTMANAGER: Tool = Tool {
    names: &["prometheus-alertmanager", "alertmanager"],
    install: Install::Debian("prometheus-alertmanager"),
};
pub const AMTOOL: Tool = Tool {
    names: &["amtool"],
    install: Install::Debian("prometheus-alertmanager"),
};
/// The version `.ci/test` installs (a test keeps the two equal).
pub const HELM: Tool = Tool {
    names: &["helm"],
    install: Install::Go("helm.sh/helm/v4/cmd/helm@v4.3.2"),
};

/// What a finished tool printed.
#[derive(Debug)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Both streams, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Tool {
    /// The first of [`Tool::names`] found on `PATH`.
    pub fn locate(&self) -> Result<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
        if let Install::Go(_) = self.install {
            dirs.extend(go_bin_dirs());
        }
        for name in self.names {
            for dir in &dirs {
                let candidate = dir.join(name);
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
        Err(Error::ToolMissing {
            tool: self.names[0],
            install: self.install,
        })
    }

    /// Runs the tool in `cwd` and waits at most `timeout`, killing it past that.
    ///
    /// Output goes to anonymous temporary files rather than pipes, so a chatty tool can
    /// never block on a full pipe while we wait for it.
    pub fn run<I, S>(&self, args: I, cwd: &Path, timeout: Duration) -> Result<ToolOutput>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let binary = self.locate()?;
        let name = self.names[0];
        let mut stdout = tempfile::tempfile().map_err(|e| Error::io("create stdout file", e))?;
        let mut stderr = tempfile::tempfile().map_err(|e| Error::io("create stderr file", e))?;
        let mut command = Command::new(&binary);
        command
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(clone(&stdout)?)
            .stderr(clone(&stderr)?);
        let child = command
            .spawn()
            .map_err(|e| Error::io(format!("spawn {}", binary.display()), e))?;
        let mut guard = ChildGuard::new(name, child);
        let status = guard.wait_for_exit(timeout)?.ok_or_else(|| Error::Timeout {
            tool: name.to_owned(),
            after: timeout,
        })?;
        Ok(ToolOutput {
            status,
            stdout: read_all(&mut stdout)?,
            stderr: read_all(&mut stderr)?,
        })
    }
}

/// Where `go install` puts binaries: `$GOBIN`, else `$GOPATH/bin` (each entry), else
/// `~/go/bin`.
fn go_bin_dirs() -> Vec<PathBuf> {
    if let Some(gobin) = std::env::var_os("GOBIN").filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(gobin)];
    }
    if let Some(gopath) = std::env::var_os("GOPATH").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&gopath).map(|p| p.join("bin")).collect();
    }
    std::env::var_os("HOME")
        .map(|home| vec![PathBuf::from(home).join("go/bin")])
        .unwrap_or_default()
}

fn clone(file: &File) -> Result<Stdio> {
    Ok(Stdio::from(
        file.try_clone()
            .map_err(|e| Error::io("duplicate output file", e))?,
    ))
}

fn read_all(file: &mut File) -> Result<String> {
    let mut text = String::new();
    file.rewind()
        .and_then(|()| file.read_to_string(&mut text))
        .map_err(|e| Error::io("read tool output", e))?;
    Ok(text)
}

/// A child process that is killed and reaped when the guard drops, so a failing test
/// never leaves a server behind.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
}

impl ChildGuard {
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        Self {
            name: name.into(),
            child: Some(child),
        }
    }

    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(|e| Error::io(format!("poll {}", self.name), e)),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the process to exit on its own; `None` if it did not.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let rounds = timeout.as_millis() / POLL.as_millis() + 1;
        for _ in 0..rounds {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            std::thread::sleep(POLL);
        }
        self.try_status()
    }

    /// Kills and reaps the process now.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: kill then fails and wait reaps the zombie.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback port that was free a moment ago. Another process may take it before the
/// server binds it; the guards retry with a fresh port when that happens.
pub fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("bind 127.0.0.1:0 to find a free port", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("read the free port", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLEEP: Tool = Tool {
        names: &["sleep"],
        install: Install::Debian("coreutils"),
    };

    #[test]
    fn a_missing_tool_names_its_debian_package() {
        let missing = Tool {
            names: &["kuma-sync-no-such-tool"],
            install: Install::Debian("prometheus-alertmanager"),
        };
        let error = missing.locate().expect_err("tool cannot exist");
        let message = error.to_string();
        assert!(message.contains("kuma-sync-no-such-tool"), "{message}");
        assert!(
            message.contains("apt-get install -y prometheus-alertmanager"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_go_tool_names_its_module() {
        let missing = Tool {
            names: &["kuma-sync-no-such-tool"],
            install: Install::Go("example.com/no/such/tool@v1.2.3"),
        };
        let message = missing.locate().expect_err("tool cannot exist").to_string();
        assert!(
            message.contains("go install example.com/no/such/tool@v1.2.3"),
            "{message}"
        );
    }

    #[test]
    fn a_tool_past_its_budget_is_killed() {
        let error = SLEEP
            .run(["30"], Path::new("/"), Duration::from_millis(200))
            .expect_err("sleep 30 cannot finish in 200 ms");
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
    }

    #[test]
    fn output_and_status_are_captured() {
        let sh = Tool {
            names: &["sh"],
            install: Install::Debian("dash"),
        };
        let output = sh
            .run(
                ["-c", "echo out; echo err >&2; exit 3"],
                Path::new("/"),
                Duration::from_secs(10),
            )
            .expect("sh runs");
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(
            (output.stdout.as_str(), output.stderr.as_str()),
            ("out\n", "err\n")
        );
    }

    #[test]
    fn dropping_the_guard_kills_and_reaps_the_process() {
        let child = Command::new(SLEEP.locate().expect("sleep"))
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let proc_entry = PathBuf::from(format!("/proc/{pid}"));
        assert!(proc_entry.exists());
        drop(ChildGuard::new("sleep", child));
        assert!(!proc_entry.exists(), "process {pid} survived its guard");
    }
}
