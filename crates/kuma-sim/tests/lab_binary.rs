//! The `kuma-sim` binary serves the example scenario, prints its URLs and stops on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// Bounds every wait on the child process.
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn binary_serves_the_example_and_stops_on_sigterm() {
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/federate.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kuma-sim"))
        .args(["--scenario", scenario, "--ephemeral-ports", "--log", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(WAIT) {
            Ok(line) if line.starts_with("ready") => break,
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.kill();
                panic!("no ready line ({e}); got {lines:?}");
            }
        }
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("global KDS: grpcs://127.0.0.1:")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("admin: http://127.0.0.1:")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l == "zone zone-2: kubernetes"), "{lines:?}");
    for prefix in [
        "global REST API: http://127.0.0.1:",
        "zone-1 REST API: http://127.0.0.1:",
        "zone-2 REST API: http://127.0.0.1:",
        "zone-2 Kubernetes API: http://127.0.0.1:",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(prefix)), "{prefix}: {lines:?}");
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    assert_eq!(rx.recv_timeout(WAIT).as_deref(), Ok("stopping"));
    // The exit follows the farewell line; bounded by the lab's own shutdown timeouts.
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let exit = done_rx
        .recv_timeout(WAIT)
        .expect("exits in time")
        .expect("waitable");
    assert!(exit.success(), "{exit:?}");
}
