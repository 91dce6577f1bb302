//! Filesystem size and free space per mount point, without letting a hung mount (a hard NFS
//! mount whose server is gone, a FUSE daemon that stopped answering) block redline.
//!
//! As node_exporter does: every `statvfs` runs on its own blocking thread and is waited for
//! only until a per-mount deadline. A mount that misses it is reported stuck
//! (`redline_host_filesystem_stuck 1`) and not asked again until that same call returns, so a
//! hung mount holds at most one thread, never one per collection, and never an async worker.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::metrics::{label, FamilySet, Label};
use crate::names as n;

/// File system types that say nothing about capacity (kernel, in-memory and container-layer
/// mounts), after node_exporter's default exclusions; `tmpfs` too, as before.
const IGNORED_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "erofs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Mount point trees that are never user data.
fn ignored_mountpoint(m: &str) -> bool {
    let under = |root: &str| m == root || m.starts_with(&format!("{root}/"));
    under("/proc")
        || under("/sys")
        || under("/dev")
        || (under("/run") && !under("/run/media"))
        || m.starts_with("/var/lib/docker/")
        || m.starts_with("/var/lib/containers/storage/")
}

/// One mounted filesystem worth reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub mountpoint: String,
    /// What is mounted (device, `server:/export`, …).
    pub device: String,
    /// File system type.
    pub fstype: String,
}

impl Mount {
    fn labels(&self) -> Vec<Label> {
        vec![
            label("mountpoint", self.mountpoint.clone()),
            label("device", self.device.clone()),
            label("fstype", self.fstype.clone()),
        ]
    }
}

/// Undoes the octal escapes of /proc/self/mounts (`\040` is a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts of /proc/self/mounts worth reporting; a mount point mounted over keeps its last
/// (visible) entry.
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    let mut seen = HashSet::new();
    let mut out: Vec<Mount> = text
        .lines()
        .rev()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (device, mountpoint, fstype) = (f.next()?, unescape(f.next()?), f.next()?);
            if IGNORED_FS.contains(&fstype) || ignored_mountpoint(&mountpoint) {
                return None;
            }
            seen.insert(mountpoint.clone()).then(|| Mount {
                mountpoint,
                device: unescape(device),
                fstype: fstype.to_string(),
            })
        })
        .collect();
    out.reverse();
    out
}

/// Size and space available to unprivileged users, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Total size.
    pub size: u64,
    /// Available to unprivileged users.
    pub available: u64,
}

/// `statvfs` of a mount point; swapped in tests for a function that blocks on demand.
pub type StatFn = Arc<dyn Fn(&Path) -> io::Result<Usage> + Send + Sync>;

/// The real `statvfs`.
pub fn statvfs(path: &Path) -> io::Result<Usage> {
    let s = rustix::fs::statvfs(path)?;
    let block = if s.f_frsize > 0 { s.f_frsize } else { s.f_bsize };
    Ok(Usage { size: block.saturating_mul(s.f_blocks), available: block.saturating_mul(s.f_bavail) })
}

/// Reads mount usage with a per-mount deadline and remembers the mounts still hanging.
pub struct Filesystems {
    stat: StatFn,
    timeout: Duration,
    /// Mount points whose `statvfs` thread has not returned yet.
    in_flight: Arc<Mutex<HashSet<String>>>,
    /// Stuck mounts already logged (logged again only after they recovered).
    logged: HashSet<String>,
}

impl Filesystems {
    /// Real `statvfs`, each mount given `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self::with_stat(Arc::new(statvfs), timeout)
    }

    /// With another stat function (tests).
    pub fn with_stat(stat: StatFn, timeout: Duration) -> Self {
        Self { stat, timeout, in_flight: Arc::default(), logged: HashSet::new() }
    }

    /// Mount points whose `statvfs` call is still running.
    pub fn stuck(&self) -> Vec<String> {
        let mut v: Vec<String> =
            self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect();
        v.sort();
        v
    }

    /// Adds size, available space and stuck state of each mount. Mounts are read in parallel;
    /// the whole call takes at most `timeout` (plus thread start-up).
    pub async fn collect(&mut self, mounts: &[Mount], out: &mut FamilySet) {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pending = Vec::new();
        for m in mounts {
            let fresh =
                self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).insert(m.mountpoint.clone());
            if !fresh {
                // Still hanging since an earlier collection: do not stack another thread on it.
                pending.push((m, None));
                continue;
            }
            let (stat, in_flight, mp) = (self.stat.clone(), self.in_flight.clone(), m.mountpoint.clone());
            let task = tokio::task::spawn_blocking(move || {
                let r = stat(Path::new(&mp));
                in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&mp);
                r
            });
            pending.push((m, Some(task)));
        }
        for (m, task) in pending {
            let result = match task {
                Some(t) => tokio::time::timeout_at(deadline, t).await.ok(),
                None => None,
            };
            let stuck = match result {
                None => true,
                Some(Ok(Ok(u))) => {
                    out.add(&n::HOST_FS_SIZE, m.labels(), u.size as f64);
                    out.add(&n::HOST_FS_AVAILABLE, m.labels(), u.available as f64);
                    false
                }
                Some(Ok(Err(e))) => {
                    tracing::debug!(mountpoint = %m.mountpoint, "statvfs failed: {e}");
                    false
                }
                Some(Err(e)) => {
                    tracing::debug!(mountpoint = %m.mountpoint, "statvfs thread failed: {e}");
                    false
                }
            };
            out.add(&n::HOST_FS_STUCK, m.labels(), if stuck { 1.0 } else { 0.0 });
            if stuck && self.logged.insert(m.mountpoint.clone()) {
                tracing::warn!(
                    mountpoint = %m.mountpoint,
                    fstype = %m.fstype,
                    "statvfs did not answer within {:?}; skipping this mount until it does",
                    self.timeout
                );
            } else if !stuck && self.logged.remove(&m.mountpoint) {
                tracing::info!(mountpoint = %m.mountpoint, "statvfs answers again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn mounts_are_parsed_filtered_and_unescaped() {
        let text = "proc /proc proc rw 0 0\n\
                    /dev/vda / ext4 rw 0 0\n\
                    tmpfs /dev/shm tmpfs rw 0 0\n\
                    nfs.local:/export /mnt/my\\040data nfs4 rw 0 0\n\
                    overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0\n\
                    /dev/sdb1 /run/media/usb vfat rw 0 0\n\
                    /dev/vdb / ext4 rw 0 0\n\
                    redline-hang /tmp/m fuse.redlinehang rw 0 0\n";
        let m = parse_mounts(text);
        let shown: Vec<(&str, &str)> = m.iter().map(|m| (m.mountpoint.as_str(), m.device.as_str())).collect();
        assert_eq!(
            shown,
            [
                ("/mnt/my data", "nfs.local:/export"),
                ("/run/media/usb", "/dev/sdb1"),
                ("/", "/dev/vdb"),
                ("/tmp/m", "redline-hang")
            ]
        );
    }

    fn mounts(names: &[&str]) -> Vec<Mount> {
        names
            .iter()
            .map(|n| Mount { mountpoint: n.to_string(), device: "d".into(), fstype: "nfs".into() })
            .collect()
    }

    /// A mount whose statvfs blocks until released: reported stuck, never given a second
    /// thread while the first hangs, and back once the call returns. The others are unaffected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hanging_mount_is_stuck_holds_one_thread_and_comes_back() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let stat: StatFn = Arc::new(move |p: &Path| {
            if p == Path::new("/hung") {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = release_rx.lock().expect("rx").recv();
            }
            Ok(Usage { size: 100, available: 40 })
        });
        let mut fs = Filesystems::with_stat(stat, Duration::from_millis(100));
        let all = mounts(&["/", "/hung"]);
        for _ in 0..5 {
            let mut out = FamilySet::new();
            fs.collect(&all, &mut out).await;
            let text =
                crate::expose::encode(vec![Arc::new(out.into_families())], crate::expose::Format::Text);
            assert!(
                text.contains(
                    "redline_host_filesystem_stuck{mountpoint=\"/hung\",device=\"d\",fstype=\"nfs\"} 1"
                ),
                "{text}"
            );
            assert!(text
                .contains("redline_host_filesystem_stuck{mountpoint=\"/\",device=\"d\",fstype=\"nfs\"} 0"));
            assert!(text.contains(
                "redline_host_filesystem_size_bytes{mountpoint=\"/\",device=\"d\",fstype=\"nfs\"} 100"
            ));
            assert!(!text.contains("redline_host_filesystem_size_bytes{mountpoint=\"/hung\""), "{text}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one thread for the hung mount, not one per collection");
        assert_eq!(fs.stuck(), ["/hung"]);

        release_tx.send(()).expect("release");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !fs.stuck().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the released call never returned");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        release_tx.send(()).expect("second release");
        let mut out = FamilySet::new();
        fs.collect(&all, &mut out).await;
        let text = crate::expose::encode(vec![Arc::new(out.into_families())], crate::expose::Format::Text);
        assert!(
            text.contains(
                "redline_host_filesystem_size_bytes{mountpoint=\"/hung\",device=\"d\",fstype=\"nfs\"} 100"
            ),
            "{text}"
        );
        assert!(text
            .contains("redline_host_filesystem_stuck{mountpoint=\"/hung\",device=\"d\",fstype=\"nfs\"} 0"));
    }
}
