//! The host collector: CPU, load, memory, filesystems and network of this machine, plus
//! redline's own RSS and CPU time. /proc is read on a blocking thread; filesystems go through
//! [`super::filesystems`], where each mount's `statvfs` has its own thread and deadline so a
//! hung mount can neither block a runtime worker nor fail the rest of the collection.

use std::time::Duration;

use sysinfo::{Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::filesystems::{parse_mounts, Filesystems, Mount};
use super::{BoxFuture, CollectError, Collector};
use crate::metrics::{label, Family, FamilySet};
use crate::names as n;

struct HostState {
    sys: System,
    networks: Networks,
    pid: Option<Pid>,
}

impl HostState {
    /// Reads /proc; call on a blocking thread.
    fn new() -> Self {
        let mut sys = System::new();
        // CPU usage is a delta between two refreshes: take the first one now.
        sys.refresh_cpu_usage();
        Self { sys, networks: Networks::new_with_refreshed_list(), pid: sysinfo::get_current_pid().ok() }
    }

    /// Everything but filesystems, plus the mount list (reading /proc/self/mounts does not
    /// touch the mounts themselves).
    fn collect(&mut self, out: &mut FamilySet) -> Vec<Mount> {
        let none = Vec::new;
        self.sys.refresh_cpu_usage();
        out.add(&n::HOST_CPU_BUSY, none(), f64::from(self.sys.global_cpu_usage()) / 100.0);
        out.add(&n::HOST_CPUS, none(), self.sys.cpus().len() as f64);
        for (i, cpu) in self.sys.cpus().iter().enumerate() {
            out.add(
                &n::HOST_CPU_CORE_BUSY,
                vec![label("core", i.to_string())],
                f64::from(cpu.cpu_usage()) / 100.0,
            );
        }
        let load = System::load_average();
        out.add(&n::HOST_LOAD1, none(), load.one);
        out.add(&n::HOST_LOAD5, none(), load.five);
        out.add(&n::HOST_LOAD15, none(), load.fifteen);

        self.sys.refresh_memory();
        out.add(&n::HOST_MEMORY_TOTAL, none(), self.sys.total_memory() as f64);
        out.add(&n::HOST_MEMORY_AVAILABLE, none(), self.sys.available_memory() as f64);
        out.add(&n::HOST_SWAP_TOTAL, none(), self.sys.total_swap() as f64);
        out.add(&n::HOST_SWAP_USED, none(), self.sys.used_swap() as f64);

        self.networks.refresh(true);
        let mut ifaces: Vec<_> = self.networks.iter().collect();
        ifaces.sort_by(|a, b| a.0.cmp(b.0));
        for (name, data) in ifaces {
            let l = || vec![label("interface", name.clone())];
            out.add(&n::HOST_NET_RX, l(), data.total_received() as f64);
            out.add(&n::HOST_NET_TX, l(), data.total_transmitted() as f64);
            out.add(&n::HOST_NET_RX_ERRORS, l(), data.total_errors_on_received() as f64);
            out.add(&n::HOST_NET_TX_ERRORS, l(), data.total_errors_on_transmitted() as f64);
        }

        if let Some(pid) = self.pid {
            self.sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                false,
                ProcessRefreshKind::nothing().with_memory().with_cpu(),
            );
            if let Some(p) = self.sys.process(pid) {
                out.add(&n::PROCESS_RSS, none(), p.memory() as f64);
                out.add(&n::PROCESS_CPU, none(), p.accumulated_cpu_time() as f64 / 1000.0);
            }
        }
        // Mounts come and go (volumes, containers): listed afresh each time.
        std::fs::read_to_string("/proc/self/mounts").map(|t| parse_mounts(&t)).unwrap_or_default()
    }
}

/// Collects this machine's metrics.
pub struct HostCollector {
    /// `None` while a sampling thread holds it (or after one was lost to a timeout).
    state: Option<Box<HostState>>,
    filesystems: Filesystems,
}

impl HostCollector {
    /// A host collector whose collections have `timeout`: each mount gets half of it, so a
    /// hung one still leaves time for everything else.
    pub fn new(timeout: Duration) -> Self {
        // The first CPU sample now (only /proc is read), so the first collection has a delta.
        Self { state: Some(Box::new(HostState::new())), filesystems: Filesystems::new(timeout / 2) }
    }
}

impl Collector for HostCollector {
    fn kind(&self) -> &'static str {
        "host"
    }

    fn target(&self) -> &str {
        "localhost"
    }

    fn has_endpoint(&self) -> bool {
        false
    }

    fn collect(&mut self) -> BoxFuture<'_, Result<Vec<Family>, CollectError>> {
        Box::pin(async move {
            // /proc reads block; keep them off the async workers, first sample included.
            let state = self.state.take();
            let joined = tokio::task::spawn_blocking(move || {
                let mut state = state.unwrap_or_else(|| Box::new(HostState::new()));
                let mut out = FamilySet::new();
                let mounts = state.collect(&mut out);
                (state, out, mounts)
            })
            .await;
            let (state, mut out, mounts) =
                joined.map_err(|e| CollectError::Query(format!("host sampling thread failed: {e}")))?;
            self.state = Some(state);
            self.filesystems.collect(&mounts, &mut out).await;
            Ok(out.into_families())
        })
    }
}
