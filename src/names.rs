//! Every metric redline exposes, declared once: name, help and kind. Collectors build samples
//! from these definitions and the rule/dashboard generators query the same names, so a renamed
//! metric cannot leave a rule or a panel pointing at nothing.

use crate::metrics::MetricDef as M;

// --- the daemon itself ---
/// Build information.
pub const BUILD_INFO: M = M::gauge("redline_build_info", "redline version and build; always 1.");
/// Wall time of the last collection.
pub const COLLECTOR_DURATION: M =
    M::gauge("redline_collector_duration_seconds", "Wall time of the last collection by this collector.");
/// Last collection outcome.
pub const COLLECTOR_SUCCESS: M =
    M::gauge("redline_collector_success", "1 if the last collection by this collector succeeded, else 0.");
/// Failed collections.
pub const COLLECTOR_ERRORS: M =
    M::counter("redline_collector_errors", "Collections that failed or timed out.");
/// Time of last success.
pub const COLLECTOR_LAST_SUCCESS: M = M::gauge(
    "redline_collector_last_success_timestamp_seconds",
    "Unix time of the last successful collection (absent until the first).",
);
/// Target reachability.
pub const TARGET_UP: M =
    M::gauge("redline_target_up", "1 if the target answered the last collection, else 0.");

// --- Redis ---
/// Server identity.
pub const REDIS_INSTANCE_INFO: M = M::gauge(
    "redline_redis_instance_info",
    "Redis server version, role, mode and eviction policy; always 1.",
);
/// Capability: whether an optional command is allowed.
pub const REDIS_COMMAND_ALLOWED: M = M::gauge(
    "redline_redis_command_allowed",
    "1 if the server accepts this optional command, 0 if it refused it (managed Redis, ACL).",
);
/// Uptime.
pub const REDIS_UPTIME: M =
    M::gauge("redline_redis_uptime_seconds", "Seconds since the Redis server started.");
/// used_memory.
pub const REDIS_MEMORY_USED: M =
    M::gauge("redline_redis_memory_used_bytes", "Memory allocated by Redis (used_memory).");
/// used_memory_rss.
pub const REDIS_MEMORY_RSS: M = M::gauge("redline_redis_memory_rss_bytes", "Resident set size of Redis.");
/// used_memory_peak.
pub const REDIS_MEMORY_PEAK: M =
    M::gauge("redline_redis_memory_peak_bytes", "Peak memory allocated by Redis.");
/// maxmemory.
pub const REDIS_MEMORY_MAX: M = M::gauge(
    "redline_redis_memory_max_bytes",
    "maxmemory setting; 0 means no limit (eviction never happens).",
);
/// Fragmentation.
pub const REDIS_MEMORY_FRAGMENTATION: M = M::gauge(
    "redline_redis_memory_fragmentation_ratio",
    "RSS divided by used memory (mem_fragmentation_ratio).",
);
/// Evictions.
pub const REDIS_EVICTED_KEYS: M =
    M::counter("redline_redis_evicted_keys", "Keys evicted because of maxmemory.");
/// Expirations.
pub const REDIS_EXPIRED_KEYS: M =
    M::counter("redline_redis_expired_keys", "Keys removed because their TTL passed.");
/// Hits.
pub const REDIS_KEYSPACE_HITS: M = M::counter("redline_redis_keyspace_hits", "Successful key lookups.");
/// Misses.
pub const REDIS_KEYSPACE_MISSES: M = M::counter("redline_redis_keyspace_misses", "Failed key lookups.");
/// Clients.
pub const REDIS_CLIENTS_CONNECTED: M =
    M::gauge("redline_redis_clients_connected", "Client connections, replicas excluded.");
/// Blocked clients.
pub const REDIS_CLIENTS_BLOCKED: M =
    M::gauge("redline_redis_clients_blocked", "Clients waiting in a blocking command (BLPOP, XREAD, …).");
/// maxclients.
pub const REDIS_CLIENTS_MAX: M = M::gauge("redline_redis_clients_max", "maxclients setting.");
/// Rejected connections.
pub const REDIS_REJECTED_CONNECTIONS: M =
    M::counter("redline_redis_rejected_connections", "Connections refused because maxclients was reached.");
/// Accepted connections.
pub const REDIS_CONNECTIONS_RECEIVED: M =
    M::counter("redline_redis_connections_received", "Connections accepted by the server.");
/// Commands processed.
pub const REDIS_COMMANDS_PROCESSED: M = M::counter("redline_redis_commands_processed", "Commands processed.");
/// Per-command calls.
pub const REDIS_COMMAND_CALLS: M =
    M::counter("redline_redis_command_calls", "Calls per command (commandstats).");
/// Per-command time.
pub const REDIS_COMMAND_DURATION: M =
    M::counter("redline_redis_command_duration_seconds", "Time spent executing each command (commandstats).");
/// Per-command failures.
pub const REDIS_COMMAND_FAILED: M =
    M::counter("redline_redis_command_failed_calls", "Calls per command that failed inside the command.");
/// Per-command rejections.
pub const REDIS_COMMAND_REJECTED: M = M::counter(
    "redline_redis_command_rejected_calls",
    "Calls per command rejected before running (bad arity, OOM, ACL, …).",
);
/// Per-command latency histogram.
pub const REDIS_COMMAND_LATENCY: M = M::histogram(
    "redline_redis_command_latency_seconds",
    "Command latency distribution (LATENCY HISTOGRAM).",
);
/// Per-command series dropped by limits.max_commands.
pub const REDIS_COMMANDS_DROPPED: M = M::gauge(
    "redline_redis_command_series_dropped",
    "Commands whose per-command series were left out because of limits.max_commands.",
);
/// Error replies by prefix.
pub const REDIS_ERRORS: M =
    M::counter("redline_redis_errors", "Error replies sent, by error prefix (errorstats).");
/// Network in.
pub const REDIS_NET_INPUT: M = M::counter("redline_redis_net_input_bytes", "Bytes read from the network.");
/// Network out.
pub const REDIS_NET_OUTPUT: M = M::counter("redline_redis_net_output_bytes", "Bytes written to the network.");
/// Connected replicas.
pub const REDIS_CONNECTED_REPLICAS: M =
    M::gauge("redline_redis_connected_replicas", "Replicas connected to this primary.");
/// Replica lag in bytes.
pub const REDIS_REPLICA_LAG_BYTES: M = M::gauge(
    "redline_redis_replica_lag_bytes",
    "Replication offset a replica is behind this primary, per replica.",
);
/// Replica lag in seconds.
pub const REDIS_REPLICA_LAG_SECONDS: M =
    M::gauge("redline_redis_replica_lag_seconds", "Seconds since a replica last acknowledged, per replica.");
/// Link to primary.
pub const REDIS_MASTER_LINK_UP: M =
    M::gauge("redline_redis_master_link_up", "On a replica: 1 if the link to the primary is up, else 0.");
/// Last IO with primary.
pub const REDIS_MASTER_LAST_IO: M = M::gauge(
    "redline_redis_master_last_io_seconds",
    "On a replica: seconds since the last interaction with the primary.",
);
/// Replication offset.
pub const REDIS_REPL_OFFSET: M =
    M::gauge("redline_redis_replication_offset_bytes", "Replication offset of this server.");
/// RDB last save ok.
pub const REDIS_RDB_LAST_BGSAVE_OK: M =
    M::gauge("redline_redis_rdb_last_bgsave_success", "1 if the last RDB save succeeded, else 0.");
/// RDB last save time.
pub const REDIS_RDB_LAST_SAVE: M =
    M::gauge("redline_redis_rdb_last_save_timestamp_seconds", "Unix time of the last successful RDB save.");
/// Changes since save.
pub const REDIS_RDB_CHANGES: M =
    M::gauge("redline_redis_rdb_changes_since_last_save", "Writes since the last RDB save.");
/// AOF enabled.
pub const REDIS_AOF_ENABLED: M = M::gauge("redline_redis_aof_enabled", "1 if AOF persistence is on.");
/// AOF write ok.
pub const REDIS_AOF_LAST_WRITE_OK: M =
    M::gauge("redline_redis_aof_last_write_success", "1 if the last AOF write succeeded, else 0.");
/// AOF rewrite ok.
pub const REDIS_AOF_LAST_REWRITE_OK: M =
    M::gauge("redline_redis_aof_last_rewrite_success", "1 if the last AOF rewrite succeeded, else 0.");
/// Keys per db.
pub const REDIS_DB_KEYS: M = M::gauge("redline_redis_db_keys", "Keys per database.");
/// Keys with TTL per db.
pub const REDIS_DB_KEYS_EXPIRING: M =
    M::gauge("redline_redis_db_keys_expiring", "Keys with a TTL per database.");
/// LATENCY LATEST.
pub const REDIS_LATENCY_LATEST: M = M::gauge(
    "redline_redis_latency_spike_latest_seconds",
    "Latest latency spike per event (LATENCY LATEST; needs latency-monitor-threshold).",
);
/// LATENCY LATEST max.
pub const REDIS_LATENCY_MAX: M =
    M::gauge("redline_redis_latency_spike_max_seconds", "Largest latency spike per event (LATENCY LATEST).");
/// Slowlog length.
pub const REDIS_SLOWLOG_LENGTH: M = M::gauge("redline_redis_slowlog_length", "Entries in the slow log.");
/// Slowlog entries ever.
pub const REDIS_SLOWLOG_ENTRIES: M = M::counter(
    "redline_redis_slowlog_entries",
    "Slow log entries recorded since server start (last id + 1).",
);
/// Slowest new entry.
pub const REDIS_SLOWLOG_NEW_MAX: M = M::gauge(
    "redline_redis_slowlog_new_max_duration_seconds",
    "Duration of the slowest slow log entry added since the previous collection (0 if none).",
);

// --- host ---
/// CPU busy.
pub const HOST_CPU_BUSY: M =
    M::gauge("redline_host_cpu_busy_ratio", "Share of time all CPUs were busy (0-1).");
/// Per-core busy.
pub const HOST_CPU_CORE_BUSY: M =
    M::gauge("redline_host_cpu_core_busy_ratio", "Share of time one core was busy (0-1).");
/// CPUs.
pub const HOST_CPUS: M = M::gauge("redline_host_cpus", "Logical CPUs.");
/// Load 1m.
pub const HOST_LOAD1: M = M::gauge("redline_host_load1", "1-minute load average.");
/// Load 5m.
pub const HOST_LOAD5: M = M::gauge("redline_host_load5", "5-minute load average.");
/// Load 15m.
pub const HOST_LOAD15: M = M::gauge("redline_host_load15", "15-minute load average.");
/// Memory total.
pub const HOST_MEMORY_TOTAL: M = M::gauge("redline_host_memory_total_bytes", "Physical memory.");
/// Memory available.
pub const HOST_MEMORY_AVAILABLE: M =
    M::gauge("redline_host_memory_available_bytes", "Memory available for new work without swapping.");
/// Swap total.
pub const HOST_SWAP_TOTAL: M = M::gauge("redline_host_swap_total_bytes", "Swap space.");
/// Swap used.
pub const HOST_SWAP_USED: M = M::gauge("redline_host_swap_used_bytes", "Swap in use.");
/// FS size.
pub const HOST_FS_SIZE: M =
    M::gauge("redline_host_filesystem_size_bytes", "Filesystem size per mount point.");
/// FS available.
pub const HOST_FS_AVAILABLE: M =
    M::gauge("redline_host_filesystem_available_bytes", "Filesystem space available to unprivileged users.");
/// Hung mounts.
pub const HOST_FS_STUCK: M = M::gauge(
    "redline_host_filesystem_stuck",
    "1 if statvfs on this mount point did not answer in time (hung NFS/FUSE mount); it is skipped until it does.",
);
/// Net rx.
pub const HOST_NET_RX: M = M::counter("redline_host_network_receive_bytes", "Bytes received per interface.");
/// Net tx.
pub const HOST_NET_TX: M = M::counter("redline_host_network_transmit_bytes", "Bytes sent per interface.");
/// Net rx errors.
pub const HOST_NET_RX_ERRORS: M =
    M::counter("redline_host_network_receive_errors", "Receive errors per interface.");
/// Net tx errors.
pub const HOST_NET_TX_ERRORS: M =
    M::counter("redline_host_network_transmit_errors", "Transmit errors per interface.");
/// Own RSS.
pub const PROCESS_RSS: M =
    M::gauge("redline_process_resident_memory_bytes", "Resident memory of the redline process.");
/// Own CPU.
pub const PROCESS_CPU: M = M::counter("redline_process_cpu_seconds", "CPU time used by the redline process.");

// --- job queues (labels: target, system, prefix, queue) ---
/// Jobs by state.
pub const QUEUE_JOBS: M = M::gauge("redline_queue_jobs", "Jobs in the queue by state.");
/// Oldest ready job.
pub const QUEUE_OLDEST_READY_AGE: M = M::gauge(
    "redline_queue_oldest_ready_age_seconds",
    "Age of the oldest job that is ready to run but not started (0 when none).",
);
/// When the oldest ready job became ready: rules compute its age as `time() - this` at
/// evaluation time, so a page does not wait for the next collection and scrape.
pub const QUEUE_OLDEST_READY_TIMESTAMP: M = M::gauge(
    "redline_queue_oldest_ready_timestamp_seconds",
    "Unix time the oldest job ready to run became ready (enqueued, or due if delayed; Celery: first seen by redline); absent when none is ready.",
);
/// When the longest-running active job started (BullMQ, Bull, RQ, Sidekiq).
pub const QUEUE_OLDEST_ACTIVE_TIMESTAMP: M = M::gauge(
    "redline_queue_oldest_active_timestamp_seconds",
    "Unix time the longest-running active job started (BullMQ, Bull, RQ, Sidekiq; absent when none is active).",
);
/// Active jobs whose worker stopped answering for them (BullMQ, Bull, RQ).
pub const QUEUE_JOBS_STALLED: M = M::gauge(
    "redline_queue_jobs_stalled",
    "Active jobs whose lock (BullMQ, Bull) or heartbeat (RQ) has expired: the worker holding them died or blocked.",
);
/// Paused flag.
pub const QUEUE_PAUSED: M = M::gauge("redline_queue_paused", "1 if the queue is paused, else 0.");
/// Workers.
pub const QUEUE_WORKERS: M = M::gauge("redline_queue_workers", "Workers connected to the queue.");
/// Jobs added.
pub const QUEUE_JOBS_ADDED: M = M::counter(
    "redline_queue_jobs_added",
    "Jobs added to the queue (BullMQ: added events since redline started; Bull: its id counter).",
);
/// Jobs completed.
pub const QUEUE_JOBS_COMPLETED: M = M::counter(
    "redline_queue_jobs_completed",
    "Jobs completed; the source per system and when it is exact: README, redline_queue_counters_exact.",
);
/// Jobs failed.
pub const QUEUE_JOBS_FAILED: M = M::counter(
    "redline_queue_jobs_failed",
    "Jobs failed for good; the source per system and when it is exact: README, redline_queue_counters_exact.",
);
/// Retries.
pub const QUEUE_JOBS_RETRIED: M = M::counter(
    "redline_queue_jobs_retried",
    "Retries (BullMQ: active jobs sent back to wait or delayed, as they happen; others: retries made by jobs that finished).",
);
/// Wait time.
pub const QUEUE_WAIT_DURATION: M = M::histogram(
    "redline_queue_wait_duration_seconds",
    "Time from ready to started, for jobs that finished since redline started.",
);
/// Processing time.
pub const QUEUE_PROCESSING_DURATION: M = M::histogram(
    "redline_queue_processing_duration_seconds",
    "Time from started to finished, for jobs that finished since redline started.",
);
/// Wait time of all the queues of one system and prefix.
pub const QUEUE_ALL_WAIT_DURATION: M = M::histogram(
    "redline_queue_all_wait_duration_seconds",
    "Time from ready to started, for jobs of every queue of one system and prefix that finished since redline started.",
);
/// Processing time of all the queues of one system and prefix.
pub const QUEUE_ALL_PROCESSING_DURATION: M = M::histogram(
    "redline_queue_all_processing_duration_seconds",
    "Time from started to finished, for jobs of every queue of one system and prefix that finished since redline started.",
);
/// Oldest-ready age is a lower bound.
pub const QUEUE_OLDEST_READY_AGE_LOWER_BOUND: M = M::gauge(
    "redline_queue_oldest_ready_age_lower_bound",
    "1 when redline_queue_oldest_ready_age_seconds may be below the truth: a bounded read (LIFO run, priority bands, RQ at_front jobs, Sidekiq garbage) stopped short, or Celery messages were there before redline first saw them; else 0.",
);
/// Counters see every job.
pub const QUEUE_COUNTERS_EXACT: M = M::gauge(
    "redline_queue_counters_exact",
    "1 when the completed/failed counters come from a source that sees every job (BullMQ events stream, Bull metrics keys), 0 when jobs removed on completion can be missed.",
);
/// Events lost before redline read them.
pub const QUEUE_EVENTS_LOST: M = M::counter(
    "redline_queue_events_lost",
    "Events the queue's events stream trimmed before redline read them: the counters miss up to this many.",
);
/// Events not read yet.
pub const QUEUE_EVENTS_BACKLOG: M = M::gauge(
    "redline_queue_events_backlog",
    "Events written to the queue's events stream that redline has not read yet (its counters are behind by this many).",
);
/// Finished jobs not timed.
pub const QUEUE_JOBS_UNTIMED: M = M::counter(
    "redline_queue_jobs_untimed",
    "Finished jobs counted but not in the duration histograms: their ready or start time was not seen.",
);
/// Queue read errors.
pub const QUEUE_ERRORS: M = M::counter(
    "redline_queue_read_errors",
    "Queues or parts of queues skipped: wrong key types, garbage job data, failed reads.",
);
/// Dropped by cap.
pub const QUEUE_DROPPED: M =
    M::gauge("redline_queue_dropped", "Queues not collected because of limits.max_queues.");
/// Discovered.
pub const QUEUE_DISCOVERED: M = M::gauge("redline_queue_discovered", "Queues found by discovery.");
/// Discovery duration.
pub const QUEUE_DISCOVERY_DURATION: M =
    M::gauge("redline_queue_discovery_duration_seconds", "Wall time of the last complete discovery pass.");
/// Discovery skips.
pub const QUEUE_DISCOVERY_ERRORS: M = M::counter(
    "redline_queue_discovery_errors",
    "Keys or sources queue discovery skipped (reason: bad_key = not UTF-8, read_failed = wrong type or refused read); retried every pass.",
);
/// Stream length.
pub const QUEUE_STREAM_LENGTH: M = M::gauge("redline_queue_stream_length", "Entries in the stream (XLEN).");
/// Group lag.
pub const QUEUE_STREAM_GROUP_LAG: M = M::gauge(
    "redline_queue_stream_group_lag",
    "Entries not yet delivered to the consumer group (XINFO's lag, or counted where XINFO has none).",
);
/// Group lag is a lower bound.
pub const QUEUE_STREAM_GROUP_LAG_LOWER_BOUND: M = M::gauge(
    "redline_queue_stream_group_lag_lower_bound",
    "1 when redline_queue_stream_group_lag is a lower bound: XINFO had no lag and more entries were undelivered than redline counts per collection.",
);
/// Group pending.
pub const QUEUE_STREAM_GROUP_PENDING: M = M::gauge(
    "redline_queue_stream_group_pending",
    "Entries delivered to the group's consumers but not acknowledged.",
);
/// Group consumers.
pub const QUEUE_STREAM_GROUP_CONSUMERS: M =
    M::gauge("redline_queue_stream_group_consumers", "Consumers in the consumer group.");
/// Oldest pending.
pub const QUEUE_STREAM_GROUP_OLDEST_PENDING_AGE: M = M::gauge(
    "redline_queue_stream_group_oldest_pending_age_seconds",
    "Age of the oldest entry delivered but not acknowledged (0 when none).",
);
/// Server-wide jobs (Sidekiq schedule/retry/dead, Celery unacked).
pub const QUEUE_SERVER_JOBS: M = M::gauge(
    "redline_queue_server_jobs",
    "Jobs in server-wide sets that belong to no single queue, by state.",
);
/// Sidekiq processed.
pub const QUEUE_SERVER_PROCESSED: M = M::counter(
    "redline_queue_server_jobs_processed",
    "Jobs processed, server-wide (Sidekiq stat:processed).",
);
/// Sidekiq failed.
pub const QUEUE_SERVER_FAILED: M =
    M::counter("redline_queue_server_jobs_failed", "Jobs failed, server-wide (Sidekiq stat:failed).");
/// Sidekiq busy.
pub const QUEUE_SERVER_BUSY: M =
    M::gauge("redline_queue_server_busy_workers", "Worker threads busy with a job, server-wide (Sidekiq).");
/// Collections in which a queue counter may have missed jobs (RQ).
pub const QUEUE_COUNT_UNCERTAIN: M = M::counter(
    "redline_queue_count_uncertain",
    "Collections in which a queue's completed/failed counter may have missed jobs, by counter and reason (see README).",
);
/// Whether a job count is an estimate (Celery active from a sliced pass).
pub const QUEUE_JOBS_ESTIMATED: M = M::gauge(
    "redline_queue_jobs_estimated",
    "1 if redline_queue_jobs for this state is an estimate (Celery active from a pass over a large unacked hash), else 0.",
);
/// Round trips to Redis.
pub const REDIS_ROUND_TRIPS: M = M::counter(
    "redline_redis_round_trips",
    "Requests redline sent to this Redis and waited for, by purpose (collect, discovery; queues on cluster and Sentinel nodes).",
);

// --- thresholds reload ---
/// Last reload outcome.
pub const RELOAD_SUCCESS: M = M::gauge(
    "redline_thresholds_reload_success",
    "1 if the last load of the thresholds and config files succeeded.",
);
/// Last reload time.
pub const RELOAD_TIMESTAMP: M = M::gauge(
    "redline_thresholds_reload_timestamp_seconds",
    "Unix time of the last successful thresholds load.",
);
/// Reload failures.
pub const RELOAD_FAILURES: M = M::counter(
    "redline_thresholds_reload_failures",
    "Changed thresholds or config files that were rejected.",
);
/// Live thresholds.
pub const THRESHOLD: M = M::gauge(
    "redline_threshold",
    "Thresholds in force, per alert and severity (and override match), for dashboards to draw.",
);

// --- PostgreSQL (label target; per database: database) ---
/// Server identity.
pub const PG_INSTANCE_INFO: M =
    M::gauge("redline_pg_instance_info", "PostgreSQL version and role; always 1.");
/// Capability.
pub const PG_QUERY_ALLOWED: M = M::gauge(
    "redline_pg_query_allowed",
    "1 if redline can run this group of queries, 0 if the server refused it (missing extension or privilege).",
);
/// Transient query errors.
pub const PG_QUERY_ERRORS: M = M::counter(
    "redline_pg_query_errors",
    "Query groups that failed for a passing reason (statement or lock timeout, cancel, …) by SQLSTATE; retried next collection.",
);
/// Connections.
pub const PG_CONNECTIONS: M = M::gauge("redline_pg_connections", "Client connections by database and state.");
/// max_connections.
pub const PG_CONNECTIONS_MAX: M = M::gauge("redline_pg_connections_max", "max_connections setting.");
/// Reserved.
pub const PG_CONNECTIONS_RESERVED: M = M::gauge(
    "redline_pg_connections_reserved",
    "Connections reserved for superusers and pg_use_reserved_connections.",
);
/// Commits.
pub const PG_XACT_COMMIT: M =
    M::counter("redline_pg_transactions_committed", "Transactions committed per database.");
/// Rollbacks.
pub const PG_XACT_ROLLBACK: M =
    M::counter("redline_pg_transactions_rolled_back", "Transactions rolled back per database.");
/// Blocks read.
pub const PG_BLOCKS_READ: M =
    M::counter("redline_pg_blocks_read", "Blocks read from disk (cache misses) per database.");
/// Blocks hit.
pub const PG_BLOCKS_HIT: M =
    M::counter("redline_pg_blocks_hit", "Blocks found in shared buffers per database.");
/// Rows.
pub const PG_ROWS: M = M::counter(
    "redline_pg_rows",
    "Rows by operation (returned, fetched, inserted, updated, deleted) per database.",
);
/// Temp files.
pub const PG_TEMP_FILES: M = M::counter("redline_pg_temp_files", "Temporary files created per database.");
/// Temp bytes.
pub const PG_TEMP_BYTES: M =
    M::counter("redline_pg_temp_bytes", "Bytes written to temporary files per database.");
/// Deadlocks.
pub const PG_DEADLOCKS: M = M::counter("redline_pg_deadlocks", "Deadlocks detected per database.");
/// Conflicts.
pub const PG_CONFLICTS: M =
    M::counter("redline_pg_conflicts", "Queries cancelled by recovery conflicts per database.");
/// Database size.
pub const PG_DATABASE_SIZE: M =
    M::gauge("redline_pg_database_size_bytes", "Disk space used by each database.");
/// Oldest transaction.
pub const PG_OLDEST_XACT: M = M::gauge(
    "redline_pg_oldest_transaction_age_seconds",
    "Age of the oldest open transaction (0 when none).",
);
/// Oldest idle in transaction.
pub const PG_OLDEST_IDLE_XACT: M = M::gauge(
    "redline_pg_oldest_idle_in_transaction_age_seconds",
    "Time the longest idle-in-transaction session has been idle (0 when none).",
);
/// Waiting on locks.
pub const PG_LOCK_WAITERS: M =
    M::gauge("redline_pg_sessions_waiting_on_locks", "Sessions waiting for a lock.");
/// Locks by mode.
pub const PG_LOCKS: M = M::gauge("redline_pg_locks", "Locks held or awaited, by mode.");
/// Replica lag seconds.
pub const PG_REPLICA_LAG_SECONDS: M = M::gauge(
    "redline_pg_replica_lag_seconds",
    "Write/flush/replay lag of each replica, seen from the primary.",
);
/// Replica lag bytes.
pub const PG_REPLICA_LAG_BYTES: M = M::gauge(
    "redline_pg_replica_lag_bytes",
    "WAL bytes each replica has yet to replay, seen from the primary.",
);
/// Standby lag.
pub const PG_STANDBY_REPLAY_LAG: M = M::gauge(
    "redline_pg_standby_replay_lag_seconds",
    "On a standby: time since the last replayed transaction was committed on the primary (0 on a primary).",
);
/// Slot retained WAL.
pub const PG_SLOT_RETAINED: M =
    M::gauge("redline_pg_replication_slot_retained_bytes", "WAL a replication slot keeps on disk.");
/// Slot active.
pub const PG_SLOT_ACTIVE: M = M::gauge("redline_pg_replication_slot_active", "1 if the slot has a consumer.");
/// Checkpoints.
pub const PG_CHECKPOINTS: M = M::counter("redline_pg_checkpoints", "Checkpoints by kind (timed, requested).");
/// Checkpoint write time.
pub const PG_CHECKPOINT_WRITE: M =
    M::counter("redline_pg_checkpoint_write_seconds", "Time checkpoints spent writing files.");
/// Checkpoint sync time.
pub const PG_CHECKPOINT_SYNC: M =
    M::counter("redline_pg_checkpoint_sync_seconds", "Time checkpoints spent syncing files.");
/// Buffers written.
pub const PG_BUFFERS_WRITTEN: M =
    M::counter("redline_pg_buffers_written", "Buffers written, by writer (checkpointer, bgwriter, backend).");
/// Buffers allocated.
pub const PG_BUFFERS_ALLOC: M = M::counter("redline_pg_buffers_allocated", "Buffers allocated.");
/// Statement calls.
pub const PG_STATEMENT_CALLS: M =
    M::counter("redline_pg_statement_calls", "Calls of a top statement (pg_stat_statements).");
/// Statement total time.
pub const PG_STATEMENT_TIME: M =
    M::counter("redline_pg_statement_duration_seconds", "Total execution time of a top statement.");
/// Statement mean.
pub const PG_STATEMENT_MEAN: M =
    M::gauge("redline_pg_statement_mean_seconds", "Mean execution time of a top statement.");
/// Statement max.
pub const PG_STATEMENT_MAX: M =
    M::gauge("redline_pg_statement_max_seconds", "Slowest execution of a top statement.");
/// Slow statements.
pub const PG_STATEMENTS_SLOW: M = M::gauge(
    "redline_pg_statements_slow",
    "Statements whose mean execution time is over the configured slow_statement time.",
);
/// Dropped statements.
pub const PG_STATEMENTS_DROPPED: M = M::gauge(
    "redline_pg_statements_dropped",
    "Statements tracked but left out of the per-statement series (statements_top).",
);
/// Dead tuples.
pub const PG_TABLE_DEAD: M = M::gauge(
    "redline_pg_table_dead_tuples",
    "Dead tuples of the tables reported (top by dead tuples and by vacuum age).",
);
/// Live tuples.
pub const PG_TABLE_LIVE: M = M::gauge("redline_pg_table_live_tuples", "Live tuples of the tables reported.");
/// Vacuum age.
pub const PG_TABLE_VACUUM_AGE: M = M::gauge(
    "redline_pg_table_last_vacuum_age_seconds",
    "Time since the table was last vacuumed or autovacuumed (-1 if never).",
);

// --- Redis Cluster and Sentinel topologies ---
/// A node of a cluster or Sentinel target.
pub const REDIS_NODE_UP: M = M::gauge(
    "redline_redis_node_up",
    "1 if this node of a cluster or Sentinel target answered the last collection, else 0.",
);
/// Failovers redline saw.
pub const REDIS_FAILOVERS: M = M::counter(
    "redline_redis_failovers",
    "Failovers redline saw on this target: a node it knew as a replica became a primary.",
);
/// Topology reads.
pub const REDIS_TOPOLOGY_REFRESHES: M = M::counter(
    "redline_redis_topology_refreshes",
    "Topology reads (CLUSTER SHARDS/NODES, Sentinel queries), by outcome.",
);
/// cluster_state.
pub const REDIS_CLUSTER_STATE: M =
    M::gauge("redline_redis_cluster_state", "1 if CLUSTER INFO says cluster_state:ok, else 0.");
/// Slots by state.
pub const REDIS_CLUSTER_SLOTS: M = M::gauge(
    "redline_redis_cluster_slots",
    "Hash slots by state (assigned, ok, pfail, fail) from CLUSTER INFO; 16384 ok is full coverage.",
);
/// Known nodes.
pub const REDIS_CLUSTER_KNOWN_NODES: M =
    M::gauge("redline_redis_cluster_known_nodes", "Nodes the cluster knows (cluster_known_nodes).");
/// Shards.
pub const REDIS_CLUSTER_SHARDS: M =
    M::gauge("redline_redis_cluster_shards", "Primaries serving at least one hash slot (cluster_size).");
/// MOVED/ASK replies.
pub const REDIS_CLUSTER_REDIRECTIONS: M = M::counter(
    "redline_redis_cluster_redirections",
    "MOVED/ASK replies to redline's queue reads (the slot map changed under it), by kind.",
);
/// Sentinel reachability.
pub const REDIS_SENTINEL_UP: M =
    M::gauge("redline_redis_sentinel_up", "1 if this sentinel answered the last collection, else 0.");
/// Masters a sentinel monitors.
pub const REDIS_SENTINEL_MASTERS: M =
    M::gauge("redline_redis_sentinel_masters", "Primaries this sentinel monitors (SENTINEL MASTERS).");
/// Quorum reachable.
pub const REDIS_SENTINEL_QUORUM_OK: M = M::gauge(
    "redline_redis_sentinel_quorum_ok",
    "1 if this sentinel can reach the quorum and a majority to fail the primary over (SENTINEL CKQUORUM).",
);
/// Sentinels that know the primary.
pub const REDIS_SENTINEL_SENTINELS: M = M::gauge(
    "redline_redis_sentinel_sentinels",
    "Sentinels watching the primary as this sentinel sees them, itself included.",
);
/// Replicas a sentinel knows.
pub const REDIS_SENTINEL_REPLICAS: M =
    M::gauge("redline_redis_sentinel_replicas", "Replicas of the primary this sentinel knows.");
/// switch-master announcements.
pub const REDIS_SENTINEL_FAILOVERS: M = M::counter(
    "redline_redis_sentinel_failovers",
    "+switch-master announcements for the primary received from the sentinels.",
);
/// Queues redline cannot read on a cluster.
pub const QUEUE_UNREADABLE: M = M::gauge(
    "redline_queue_unreadable",
    "1 for a queue redline did not read, by reason: cross_slot (its keys hash to several cluster slots; give it a {hash-tag} prefix), node_down (the node owning its slot did not answer), no_owner (no node serves its slot).",
);
