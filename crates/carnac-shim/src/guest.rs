//! Running a container's guest in Carnac: a WASI program ([`Program`]) with
//! the container's argv, environment, root filesystem and memory limit, or
//! the function host ([`Host`]) listening on the pod's network.
//!
//! Both run as the container's init process (PID 1 of its PID namespace),
//! which the kernel only lets a signal reach through a handler: a program gets
//! one that ends it with the status a shell reports for that signal (143 for
//! `ctr task kill`'s SIGTERM, the kubelet's stop), the host drains its
//! requests in flight first. SIGKILL (the end of a grace period) needs none.

use std::io::Write;
use std::path::Path;

use carnac::{Config, Engine, Error, Linker, Store, StoreLimits, Strategy};
use carnac_wasi::{I32Exit, WasiCtx};

use crate::limits;
use crate::sandbox::Module;

/// Exit status of a guest that trapped (what `carnac run` and Wasmtime use).
pub const TRAP_EXIT: i32 = 134;

/// Exit status when the module cannot be loaded or started.
pub const LOAD_FAILED_EXIT: i32 = 1;

/// Where the function host listens when neither `CARNAC_LISTEN` nor the
/// configuration's `listen` says: every address of the pod, port 8080.
pub const POD_LISTEN: &str = "0.0.0.0:8080";

/// A WASI program and what the container gives it.
#[derive(Debug)]
pub struct Program {
    pub module: Module,
    /// The export to call (`_start` for a command).
    pub func: String,
    pub argv: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    /// `CARNAC_TIER` (the container's, else the node's); `None`: Carnac's default (`auto`).
    pub tier: Option<Strategy>,
}

/// The function host: `carnac serve` inside the pod.
#[derive(Debug)]
pub struct Host {
    pub source: carnac_serve::Source,
    /// `CARNAC_LISTEN`.
    pub listen: Option<String>,
    pub tier: Option<Strategy>,
}

impl Program {
    /// Runs the program: its `proc_exit` status, 0 when its function returns,
    /// [`TRAP_EXIT`] on a trap, [`LOAD_FAILED_EXIT`] when it cannot start.
    /// Errors go to the container's stderr (its log).
    pub fn run(self) -> i32 {
        exit_on_signals();
        match self.run_inner() {
            Ok(()) => 0,
            Err(Error::Trap(trap)) => match trap.downcast_host::<I32Exit>() {
                Some(exit) => exit.0,
                None => {
                    eprintln!("Error: {trap}");
                    TRAP_EXIT
                }
            },
            Err(e) => {
                eprintln!("Error: {e}");
                LOAD_FAILED_EXIT
            }
        }
    }

    fn run_inner(&self) -> Result<(), Error> {
        let mut config = Config::new();
        // A compiled artifact (`carnac compile`) runs in the compiled tier unless told otherwise, as in `carnac run`.
        if let Some(tier) = self.tier.or_else(|| self.is_artifact().then_some(Strategy::Cranelift)) {
            config.strategy(tier);
        }
        // The container's file system is the image's: no code cache in it.
        config.cache(false);
        let engine = Engine::new(&config);
        let module = match &self.module {
            Module::File(path) => carnac::Module::from_file(&engine, path)?,
            Module::Bytes(bytes) => carnac::Module::new(&engine, bytes)?,
        };

        let mut wasi = WasiCtx::builder();
        wasi.inherit_stdio().args(self.argv.iter().cloned()).env_entries(self.env.iter().cloned());
        wasi.preopened_dir("/", "/").map_err(|e| Error::Io(format!("cannot preopen the root filesystem: {e}")))?;
        let mut store = Store::new(&engine, wasi.build());
        if let Some(memory) = limits::cgroup_memory(Path::new("/sys/fs/cgroup")) {
            let cap = usize::try_from(memory.guest_cap()).unwrap_or(usize::MAX);
            store.set_limiter(StoreLimits::new().memory_size(cap));
        }
        let mut linker: Linker<WasiCtx> = Linker::new(&engine);
        carnac_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
        let instance = linker.instantiate(&mut store, &module)?;
        let func = instance
            .get_func(&store, &self.func)
            .ok_or_else(|| Error::Usage(format!("the module exports no function `{}`", self.func)))?;
        let results = func.ty(&store).results().len();
        let mut out = vec![carnac::Val::I32(0); results];
        func.call(&mut store, &[], &mut out)?;
        Ok(())
    }
}

impl Program {
    /// Whether the module is a `.cwasm` artifact rather than wasm (unreadable: no; loading says why).
    fn is_artifact(&self) -> bool {
        match &self.module {
            Module::Bytes(bytes) => carnac::Module::is_artifact(bytes),
            Module::File(path) => {
                use std::io::Read;
                let mut head = [0u8; 8];
                std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok()
                    && carnac::Module::is_artifact(&head)
            }
        }
    }
}

impl Host {
    /// Serves until SIGTERM or SIGINT, then drains: status 0, or
    /// [`LOAD_FAILED_EXIT`] when the configuration or a module is refused.
    pub fn run(self) -> i32 {
        let listen = match self.listen_address() {
            Ok(l) => l,
            Err(e) => {
                eprintln!("Error: {e}");
                return LOAD_FAILED_EXIT;
            }
        };
        let overrides = carnac_serve::Overrides { tier: self.tier };
        match carnac_serve::serve_until_signal(self.source, Some(&listen), overrides) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: {e}");
                LOAD_FAILED_EXIT
            }
        }
    }

    /// `CARNAC_LISTEN`, else the configuration's `listen`, else [`POD_LISTEN`].
    fn listen_address(&self) -> Result<String, String> {
        if let Some(l) = &self.listen {
            return Ok(l.clone());
        }
        if let carnac_serve::Source::ConfigFile(path) = &self.source {
            if let Some(l) = carnac_serve::ServeConfig::from_file(path)?.listen {
                return Ok(l);
            }
        }
        Ok(POD_LISTEN.to_string())
    }
}

/// SIGTERM, SIGINT or SIGHUP end the program at once with 128 + the signal's
/// number (a WASI preview1 guest has no way to handle them). Without a handler
/// the container's PID 1 would ignore them.
fn exit_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: cannot install signal handlers ({e}): only SIGKILL will stop this container");
            return;
        }
    };
    let _ = std::thread::Builder::new().name("carnac-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            // `_exit`, not `exit`: `exit` runs the process's exit handlers while
            // the guest thread keeps running, and a guest thread that fails under
            // that teardown could reach its own `exit(1)` first (seen once in CI:
            // status 1 instead of 143). `_exit` ends every thread at once.
            // SAFETY: `_exit` takes a status and never returns; nothing of this
            // process is used after it.
            unsafe { libc::_exit(128 + signal) }
        }
    });
}
