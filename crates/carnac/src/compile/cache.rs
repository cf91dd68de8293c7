//! The code cache: compiled modules kept on disk as artifacts, so that a
//! module compiled once is loaded, not compiled, the next time (by this or
//! any later process).
//!
//! Why: Cranelift takes seconds on a large module, loading its artifact
//! milliseconds, and `carnac run` / `carnac serve` see the same modules again
//! and again. The cache owns one directory (see [`crate::Config::cache`]) of
//! files named by [`super::artifact::cache_key`], a hash of the module's bytes
//! and of everything the code depends on (this build of Carnac, the target
//! and its CPU features, the code-changing settings), so a different build or
//! setting simply misses. An entry is an artifact like any other and loads
//! through the same checks; in addition its wasm must equal the module's
//! bytes (a hash collision, or a stray file, is a miss, not a wrong module).
//!
//! How it stays sane with many processes and no locks:
//! - writes go to a temporary file in the same directory, then `rename` into
//!   place, which is atomic: readers see a whole entry or none;
//! - an entry that fails to load (damaged, truncated, from other bytes) is
//!   ignored, and the freshly compiled module is written over it;
//! - after each write the directory is kept under its size bound by deleting
//!   the least recently used entries, by modification time, which a hit
//!   refreshes; temporary files left by a crashed writer are deleted once they
//!   are an hour old;
//! - every failure (no home directory, read-only file system, a full disk) is
//!   ignored: the cache is an optimisation, never a reason to fail a load.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::engine::{CacheCounters, Engine};
use crate::error::Error;

/// Artifact files are `<key>.cwasm`; temporary files start with this.
const TMP_PREFIX: &str = ".tmp-";

/// The directory the engine caches in, if the cache is on and one is known.
pub(crate) fn dir(engine: &Engine) -> Option<PathBuf> {
    let c = &engine.config().cache;
    if !c.enabled {
        return None;
    }
    if let Some(d) = &c.dir {
        return Some(d.clone());
    }
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = env("CARNAC_CACHE_DIR") {
        return Some(d);
    }
    // XDG: a relative value is invalid and ignored.
    if let Some(d) = env("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return Some(d.join("carnac"));
    }
    env("HOME").map(|h| h.join(".cache").join("carnac"))
}

/// Loads `wasm`'s compiled code from the cache, or compiles it with `compile`
/// and stores the result. `load` turns an entry (its open file, which it maps:
/// entries are only ever replaced by renaming, never modified in place) into
/// the module (it must fail unless the entry's wasm is `wasm`); `serialize`
/// turns the compiled module into an entry.
pub(crate) fn get_or_compile<M>(
    engine: &Engine,
    dir: &Path,
    wasm: &[u8],
    load: impl FnOnce(&std::fs::File) -> Result<M, Error>,
    compile: impl FnOnce() -> Result<M, Error>,
    serialize: impl FnOnce(&M) -> Result<Vec<u8>, Error>,
) -> Result<M, Error> {
    if let Some(module) = get(engine, dir, wasm, load) {
        return Ok(module);
    }
    let module = compile()?;
    if let Ok(bytes) = serialize(&module) {
        put(engine, dir, wasm, &bytes);
    }
    Ok(module)
}

/// `wasm`'s entry, loaded with `load` (see [`get_or_compile`]), if the cache
/// has a good one; a miss or a damaged entry is counted.
pub(crate) fn get<M>(
    engine: &Engine,
    dir: &Path,
    wasm: &[u8],
    load: impl FnOnce(&std::fs::File) -> Result<M, Error>,
) -> Option<M> {
    let counters = engine.cache_counters();
    let key = super::artifact::cache_key(engine, wasm).ok()?;
    let path = dir.join(format!("{key}.cwasm"));
    if let Ok(file) = std::fs::File::open(&path) {
        match load(&file) {
            Ok(module) => {
                CacheCounters::bump(&counters.hits);
                touch(&path);
                return Some(module);
            }
            Err(_) => CacheCounters::bump(&counters.corrupt),
        }
    }
    CacheCounters::bump(&counters.misses);
    None
}

/// Stores `artifact` as `wasm`'s entry (best effort), then keeps the
/// directory under its size bound.
pub(crate) fn put(engine: &Engine, dir: &Path, wasm: &[u8], artifact: &[u8]) {
    let Ok(key) = super::artifact::cache_key(engine, wasm) else { return };
    let path = dir.join(format!("{key}.cwasm"));
    if store(dir, &path, artifact).is_ok() {
        CacheCounters::bump(&engine.cache_counters().stores);
        evict(dir, engine.config().cache.max_bytes, &path);
    }
}

/// Marks an entry as just used (eviction goes by modification time).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Writes `bytes` to a temporary file in `dir`, then renames it to `path`.
fn store(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    create_private_dir(dir)?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!("{TMP_PREFIX}{}-{n}-{nanos:x}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        // Not fsynced: a crash may leave a truncated entry, which the checksum
        // turns into a miss and a rewrite.
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates the cache directory (and its parents), readable by its user only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Deletes the least recently used entries until the directory's entries
/// total at most `max_bytes` (`keep`, just written, goes last), and
/// temporary files an hour old.
fn evict(dir: &Path, max_bytes: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    let mut files = Vec::new();
    let mut total = 0u64;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(meta) = e.metadata() else { continue };
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if name.starts_with(TMP_PREFIX) {
            if now.duration_since(mtime).unwrap_or_default() > Duration::from_secs(3600) {
                let _ = std::fs::remove_file(e.path());
            }
            continue;
        }
        if !meta.is_file() || !name.ends_with(".cwasm") {
            continue;
        }
        total += meta.len();
        let path = e.path();
        files.push((path == keep, mtime, meta.len(), path));
    }
    if total <= max_bytes {
        return;
    }
    files.sort_by_key(|&(keep, mtime, _, _)| (keep, mtime));
    for (_, _, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}
