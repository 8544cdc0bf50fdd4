//! The crate boundaries ARCHITECTURE.md draws, held by `cargo tree`: the simulator depends
//! on no product crate, and the engine builds without the IO it does not need.

use std::collections::BTreeSet;

use deploy_tests::repo;

/// Every package in `package`'s dependency tree with `args` (`-e`, features).
pub fn linked_crates(package: &str, args: &[&str]) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-p", package])
        .args(["--prefix", "none", "--format", "{p}"])
        .args(args)
        .current_dir(repo::root())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The product crates: what the simulator is the oracle for, so it must not use them.
const PRODUCT: [&str; 3] = ["kuma-sync", "policy-watcher", "kds-probe"];

#[test]
fn the_simulator_depends_on_no_product_crate_not_even_in_its_tests() {
    let sim = linked_crates("kuma-sim", &["-e", "normal,dev"]);
    assert!(sim.contains("kds-wire") && sim.contains("kuma-model"), "{sim:?}");
    for product in PRODUCT {
        assert!(!sim.contains(product), "kuma-sim depends on {product}");
    }
}

#[test]
fn the_engine_builds_without_kube_hyper_or_rustls() {
    let engine = linked_crates("policy-watcher", &["-e", "normal", "--no-default-features"]);
    assert!(engine.contains("kuma-model"), "{engine:?}");
    for io in [
        "kube",
        "kube-client",
        "k8s-openapi",
        "hyper",
        "hyper-rustls",
        "rustls",
        "tonic",
    ] {
        assert!(!engine.contains(io), "the engine alone links {io}");
    }
    // And the default build is the one with the sources.
    let full = linked_crates("policy-watcher", &["-e", "normal"]);
    assert!(full.contains("kube") && full.contains("hyper-rustls"), "{full:?}");
}
