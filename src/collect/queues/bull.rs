//! Bull (v3/v4) key layout. Reading is shared with BullMQ (`bullmq.lua` in Bull mode):
//! Bull keeps prioritized jobs in `wait` (with a `priority` index beside it), has no
//! waiting-children set, and marks a paused queue with a `meta-paused` key.

/// Bull's keys for a queue, in the order the shared script expects. Slots Bull lacks
/// (prioritized, waiting-children) point at Bull's own keys but are skipped in Bull mode.
pub fn keys(prefix: &str, name: &str) -> Vec<String> {
    [
        "wait",
        "active",
        "paused",
        "delayed",
        "priority",
        "waiting-children",
        "completed",
        "failed",
        "meta",
        "id",
        "metrics:completed",
        "metrics:failed",
        "meta-paused",
    ]
    .iter()
    .map(|k| format!("{prefix}:{name}:{k}"))
    .collect()
}
