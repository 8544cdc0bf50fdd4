//! `kuma_sync_shard_info`: which shard of how many this process is, exported only when
//! sharded, so the PromQL that aggregates shards can tell them apart and count them.

use policy_watcher::Shard;
use prometheus::{IntGauge, Opts, Registry};

/// Registers `kuma_sync_shard_info{shard, total} 1` in `registry`.
pub fn register(registry: &Registry, shard: Shard) -> prometheus::Result<()> {
    let info = IntGauge::with_opts(
        Opts::new(
            "kuma_sync_shard_info",
            "Always 1; which shard of how many this kuma-sync is (zones are split among shards by rendezvous hashing).",
        )
        .const_label("shard", shard.index.to_string())
        .const_label("total", shard.total.to_string()),
    )?;
    info.set(1);
    registry.register(Box::new(info))
}
