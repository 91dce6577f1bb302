//! Bull (v3/v4) key layout. Reading is shared with BullMQ (`bullmq.lua` in Bull mode):
//! Bull keeps prioritized jobs in `wait` (with a `priority` index beside it), has no
//! waiting-children set, and marks a paused queue with a `meta-paused` key.

/// Bull's keys for a queue, in the order the shared script expects. Slots Bull lacks
/// (prioritized, waiting-children) are skipped by the script in Bull mode; slot 5 names Bull's
/// own `priority` index.
pub fn keys(prefix: &str, name: &str) -> Vec<String> {
    super::bullmq::keys_with(prefix, name, "priority")
}
