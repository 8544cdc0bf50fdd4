//! Feeds the bytes to `kuma-sync serve`'s configuration as the text of its file:
//! `kuma_sync::config::ServeConfig::parse` (YAML into the file's structure, unknown keys
//! refused, then validation), for a file in a folder that does not exist. Inputs naming
//! a device or kernel file are skipped: a `passwordFile: /dev/zero` is read at start-up
//! like any secret, and is the user's to avoid, not the parser's input.
//!
//! Asserts, beyond no panic: an accepted configuration has its intervals in range,
//! unique zone names that are DNS labels, at least one type, and a non-empty password
//! when it asks for basic auth.
#![no_main]

use std::{path::Path, time::Duration};

use kuma_sync::config::ServeConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let Ok(config) = ServeConfig::parse(text, Path::new("/nonexistent/kuma-sync/config.yaml")) else {
        return;
    };
    let secs = Duration::from_secs;
    assert!((secs(1)..=secs(3600)).contains(&config.poll_interval));
    assert!((secs(1)..=secs(86_400)).contains(&config.stall_threshold));
    assert!(!config.types.is_empty());
    for (i, (name, _)) in config.zones.iter().enumerate() {
        assert!(!name.is_empty() && name.len() <= 63, "zone name {name:?}");
        assert!(
            config.zones[..i].iter().all(|(n, _)| n != name),
            "zone {name:?} twice"
        );
    }
    if let Some((user, password)) = &config.basic_auth {
        assert!(!user.trim().is_empty() && !password.trim().is_empty());
    }
});
