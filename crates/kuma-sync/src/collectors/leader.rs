//! `kuma_sync_leader`: whether this replica leads (1) or follows (0). Every replica reads
//! and serves; only the leader runs the KDS probe, so only its `/metrics` carries the
//! `kuma_sync_kds_*` families (see [`super::Exposition::with_leader_only`]).

use prometheus::{IntGauge, Opts, Registry};

/// Registers the gauge in `registry`, at 0 until the election says otherwise.
pub fn register(registry: &Registry) -> prometheus::Result<IntGauge> {
    let leader = IntGauge::with_opts(Opts::new(
        "kuma_sync_leader",
        "Whether this replica is the leader (1), which alone runs the KDS probe, or a follower (0). Always 1 without leader election.",
    ))?;
    registry.register(Box::new(leader.clone()))?;
    Ok(leader)
}
