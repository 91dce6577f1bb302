//! The host collector: CPU, load, memory, filesystems and network of this machine, plus
//! redline's own RSS and CPU time, read through sysinfo on a blocking thread.

use sysinfo::{Disks, Networks, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

use super::{BoxFuture, CollectError, Collector};
use crate::metrics::{label, Family, FamilySet};
use crate::names as n;

/// Filesystems that say nothing about capacity (kernel and in-memory mounts).
const PSEUDO_FS: &[&str] =
    &["proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "overlay", "squashfs", "nsfs", "autofs"];

struct HostState {
    sys: System,
    disks: Disks,
    networks: Networks,
    pid: Option<Pid>,
}

impl HostState {
    fn new() -> Self {
        let mut sys = System::new();
        // CPU usage is a delta between two refreshes: take the first one now.
        sys.refresh_cpu_usage();
        Self {
            sys,
            disks: Disks::new_with_refreshed_list(),
            networks: Networks::new_with_refreshed_list(),
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    fn collect(&mut self) -> Vec<Family> {
        let mut out = FamilySet::new();
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

        // Mounts come and go (volumes, containers): re-list, dropping vanished ones.
        self.disks.refresh(true);
        let mut seen = std::collections::HashSet::new();
        for d in self.disks.list() {
            let fs = d.file_system().to_string_lossy().into_owned();
            let mount = d.mount_point().to_string_lossy().into_owned();
            if PSEUDO_FS.contains(&fs.as_str()) || !seen.insert(mount.clone()) {
                continue;
            }
            let l = || {
                vec![
                    label("mountpoint", mount.clone()),
                    label("device", d.name().to_string_lossy().into_owned()),
                    label("fstype", fs.clone()),
                ]
            };
            out.add(&n::HOST_FS_SIZE, l(), d.total_space() as f64);
            out.add(&n::HOST_FS_AVAILABLE, l(), d.available_space() as f64);
        }

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
        out.into_families()
    }
}

/// Collects this machine's metrics.
pub struct HostCollector {
    state: Option<Box<HostState>>,
}

impl HostCollector {
    /// A host collector; takes the first CPU sample immediately.
    pub fn new() -> Self {
        Self { state: Some(Box::new(HostState::new())) }
    }
}

impl Default for HostCollector {
    fn default() -> Self {
        Self::new()
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
            // /proc reads block; keep them off the async workers.
            let mut state = self.state.take().unwrap_or_else(|| Box::new(HostState::new()));
            let joined = tokio::task::spawn_blocking(move || {
                let families = state.collect();
                (state, families)
            })
            .await;
            match joined {
                Ok((state, families)) => {
                    self.state = Some(state);
                    Ok(families)
                }
                Err(e) => Err(CollectError::Query(format!("host sampling thread failed: {e}"))),
            }
        })
    }
}
