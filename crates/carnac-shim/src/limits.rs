//! The container's memory limit, as the guest's memories see it.
//!
//! youki puts the container's process in its cgroup before the module runs, so
//! the kernel enforces the pod's memory limit on the whole process whatever we
//! do (a guest that outgrows it is OOM-killed, exit status 137, and nothing
//! else is touched). Applying the limit to the guest's memories as well turns
//! the common case into a clean failure inside the guest instead: its
//! `memory.grow` returns -1 once the memories would take the process past the
//! limit, as with `carnac run --max-memory`.
//!
//! The limit is read from the cgroup filesystem as the container sees it
//! (Kubernetes mounts `/sys/fs/cgroup` read-only in every container; `ctr run`
//! needs `--mount type=cgroup,...` for it): cgroup v2's `memory.max` and
//! `memory.current`, or v1's `memory.limit_in_bytes` and `memory.usage_in_bytes`.

use std::path::{Path, PathBuf};

/// Memory kept for the runtime itself (its code, the interpreter's or
/// compiler's data, WASI buffers) below the cgroup limit.
pub const RUNTIME_HEADROOM: u64 = 8 << 20;

/// A limit at or above this is "no limit" (cgroup v1 reports `PAGE_COUNTER_MAX` pages).
const UNLIMITED: u64 = 1 << 60;

/// What the cgroup allows and what the process already uses, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupMemory {
    pub limit: u64,
    pub usage: u64,
}

impl CgroupMemory {
    /// The cap for the guest's memories: the limit less what the process
    /// already uses and [`RUNTIME_HEADROOM`] (at least one wasm page, so the
    /// error a too-small limit gives is the module's own).
    pub fn guest_cap(&self) -> u64 {
        self.limit.saturating_sub(self.usage).saturating_sub(RUNTIME_HEADROOM).max(64 << 10)
    }
}

/// The container's memory limit under `root` (normally `/sys/fs/cgroup`), if
/// one is set and visible.
pub fn cgroup_memory(root: &Path) -> Option<CgroupMemory> {
    for dir in candidate_dirs(root) {
        // cgroup v2
        if let Some(limit) = read_value(&dir.join("memory.max")) {
            let usage = read_value(&dir.join("memory.current")).unwrap_or(0);
            return (limit < UNLIMITED).then_some(CgroupMemory { limit, usage });
        }
        // cgroup v1
        if let Some(limit) = read_value(&dir.join("memory.limit_in_bytes")) {
            let usage = read_value(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
            return (limit < UNLIMITED).then_some(CgroupMemory { limit, usage });
        }
    }
    None
}

/// Where the container's memory controller may be: the mount's root (a
/// container's own view, as runc and youki mount it), then the process's
/// cgroup path under the mount (a view of the host's hierarchy).
fn candidate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf(), root.join("memory")];
    if let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") {
        for line in text.lines() {
            // "hierarchy-ID:controller-list:path"; v2 has ID 0 and no controllers.
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let rel = path.trim_start_matches('/');
            if rel.is_empty() {
                continue;
            }
            if controllers.split(',').any(|c| c == "memory") {
                dirs.push(root.join("memory").join(rel));
            } else if controllers.is_empty() {
                dirs.push(root.join(rel));
            }
        }
    }
    dirs
}

/// A cgroup file's number (`max`: unlimited).
fn read_value(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    if text == "max" {
        return Some(u64::MAX);
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("carnac-shim-limits-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_a_v1_limit_and_leaves_headroom() {
        let root = dir("v1");
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::write(root.join("memory/memory.limit_in_bytes"), "67108864\n").unwrap();
        std::fs::write(root.join("memory/memory.usage_in_bytes"), "4194304\n").unwrap();
        let m = cgroup_memory(&root).unwrap();
        assert_eq!(m, CgroupMemory { limit: 64 << 20, usage: 4 << 20 });
        assert_eq!(m.guest_cap(), (64 << 20) - (4 << 20) - RUNTIME_HEADROOM);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn reads_a_v2_limit_and_max_means_none() {
        let root = dir("v2");
        std::fs::write(root.join("memory.max"), "33554432\n").unwrap();
        std::fs::write(root.join("memory.current"), "1048576\n").unwrap();
        assert_eq!(cgroup_memory(&root), Some(CgroupMemory { limit: 32 << 20, usage: 1 << 20 }));
        std::fs::write(root.join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_memory(&root), None);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v1_unlimited_is_none_and_a_tiny_limit_still_allows_a_page() {
        let root = dir("v1max");
        std::fs::create_dir_all(root.join("memory")).unwrap();
        std::fs::write(root.join("memory/memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(cgroup_memory(&root), None);
        assert_eq!(CgroupMemory { limit: 1 << 20, usage: 2 << 20 }.guest_cap(), 64 << 10);
        std::fs::remove_dir_all(root).unwrap();
    }
}
