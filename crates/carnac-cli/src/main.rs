//! `carnac`: the command-line front end. Argument parsing and wiring only; every
//! piece of behaviour lives in the `carnac` and `carnac-wasi` libraries.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use carnac::{Config, Engine, Error, Linker, Module, Store, StoreLimits, Val};
use carnac_wasi::{I32Exit, WasiCtx};

/// Exit status for a guest trap (what Wasmtime uses on Unix).
const TRAP_EXIT: u8 = 134;

#[derive(Parser)]
#[command(name = "carnac", version, about = "A server-side WebAssembly runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a WebAssembly module (binary `.wasm` or text `.wat`), with WASI preview1.
    Run(Box<RunArgs>),
    /// Serve HTTP: each request runs a fresh instance of a WASI handler (CGI, WAGI-compatible).
    Serve(ServeArgs),
    /// Compile a module to native code ahead of time: a `.cwasm` artifact that `carnac run` loads without compiling.
    Compile(CompileArgs),
    /// Pre-initialise a module (as Wizer does): run its init export once, with
    /// WASI, and write a module that starts in the state it left.
    Snapshot(SnapshotArgs),
}

#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
struct SnapshotArgs {
    /// Where to write the pre-initialised module.
    #[arg(short = 'o', long = "output", value_name = "OUT.wasm")]
    output: PathBuf,
    /// The export that initialises the module (it is removed from the output).
    #[arg(long, value_name = "NAME", default_value = "wizer.initialize")]
    init_func: String,
    /// Grant a host directory to the init function: `HOST` or `HOST::GUEST`.
    #[arg(long, value_name = "HOST[::GUEST]")]
    dir: Vec<String>,
    /// Set an environment variable for the init function: `NAME=VALUE`, or `NAME`.
    #[arg(long, value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Code generation options, as for `carnac run`: `-C tier=auto|interp|cranelift`.
    #[arg(short = 'C', value_name = "OPT=VAL,...")]
    codegen_opts: Vec<String>,
    /// The module to pre-initialise (binary `.wasm` or text `.wat`).
    module: PathBuf,
    /// Arguments the init function sees (argv[1..]).
    #[arg(allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(clap::Args)]
struct CompileArgs {
    /// Where to write the artifact (default: the module's name with `.cwasm`).
    #[arg(short = 'o', long = "output", value_name = "OUT.cwasm")]
    output: Option<PathBuf>,
    /// Settings the code depends on, as `carnac run` will be given them:
    /// `-W fuel=N` (compile with fuel metering), `-W timeout=DURATION` (with interruption checks),
    /// and the proposal switches of `carnac run -W`.
    #[arg(short = 'W', value_name = "OPT=VAL,...")]
    wasm_opts: Vec<String>,
    /// `-C tier=cranelift` (the default: the only tier with machine code).
    #[arg(short = 'C', value_name = "OPT=VAL,...")]
    codegen_opts: Vec<String>,
    /// The module to compile (binary `.wasm` or text `.wat`).
    module: PathBuf,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on (default: the configuration's `listen`, else 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    /// Code generation options: `-C tier=auto|interp|cranelift` (the tier that
    /// runs the handlers; overrides the configuration's `tier`).
    #[arg(short = 'C', value_name = "OPT=VAL,...")]
    codegen_opts: Vec<String>,
    /// A `carnac.toml` configuration, or a module to serve on every path.
    target: PathBuf,
}

#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
struct RunArgs {
    /// Call this exported function instead of `_start`; its results are printed one per line.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,
    /// Grant a host directory: `HOST` (seen under the same name) or `HOST::GUEST`.
    #[arg(long, value_name = "HOST[::GUEST]")]
    dir: Vec<String>,
    /// Grant a listening TCP socket bound to this address (the guest accepts on it).
    #[arg(long, value_name = "ADDR")]
    tcplisten: Vec<String>,
    /// Set an environment variable for the guest: `NAME=VALUE`, or `NAME` to pass the host's value.
    #[arg(long, value_name = "NAME[=VALUE]")]
    env: Vec<String>,
    /// Run under fuel metering with this budget (one unit per instruction).
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Cap the guest's linear memories and tables together at this size (bytes;
    /// suffixes K, M, G; a table element counts 8 bytes).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
    /// Interrupt the guest after this wall-clock time (e.g. `500ms`, `5s`, `2m`).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Validate each function on its first call instead of up front (faster
    /// start for large modules; an invalid function traps when called).
    #[arg(long)]
    lazy_validation: bool,
    /// Wasmtime-style options: `-W fuel=N,max-memory-size=SIZE,timeout=DURATION`,
    /// `-W threads=y|n` (the threads proposal: shared memories and atomics; on
    /// by default, `n` refuses modules that use them), and the same switch for
    /// each WebAssembly proposal in Wasmtime's names: `bulk-memory`,
    /// `reference-types`, `multi-value`, `simd`, `relaxed-simd`, `extended-const`,
    /// `multi-memory`, `tail-call`, `memory64`, `function-references`, `exceptions`, `gc` (all on by
    /// default).
    #[arg(short = 'W', value_name = "OPT=VAL,...")]
    wasm_opts: Vec<String>,
    /// WASI options: `-S threads=y|n` (wasi-threads: a module that imports
    /// `wasi.thread-spawn` runs with threads; on by default, `n` leaves the
    /// import undefined), `-S max-threads=N` (the most threads a program may
    /// have alive besides its main thread; default 128; past it thread creation
    /// fails with EAGAIN).
    #[arg(short = 'S', value_name = "OPT=VAL,...")]
    wasi_opts: Vec<String>,
    /// Code generation options: `-C tier=auto|interp|cranelift` (the tier that
    /// runs the module; default `auto`: interpreted at once, hot code compiled in
    /// the background; `cranelift` for a `.cwasm` artifact), `-C cache=y|n` (the
    /// compiled-code cache, on by default for `auto` and `cranelift`).
    #[arg(short = 'C', value_name = "OPT=VAL,...")]
    codegen_opts: Vec<String>,
    /// The module to run.
    module: PathBuf,
    /// Arguments for the program (or for the invoked function).
    #[arg(allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let tier = match codegen_tier(&args.codegen_opts) {
                Ok(tier) => tier,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let is_config = args.target.extension().is_some_and(|e| e == "toml");
            let source = if is_config {
                carnac_serve::Source::ConfigFile(args.target)
            } else {
                carnac_serve::Source::Module(args.target)
            };
            let overrides = carnac_serve::Overrides { tier };
            match carnac_serve::serve_until_signal(source, args.listen.as_deref(), overrides) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("Error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Snapshot(args) => match snapshot(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Compile(args) => match compile(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => match run(*args) {
            Ok(code) => ExitCode::from(code),
            Err(Error::Trap(trap)) => match trap.downcast_host::<I32Exit>() {
                Some(exit) => ExitCode::from(exit.0 as u8),
                // An exception the program did not catch: one line, naming its tag.
                None if trap.kind() == carnac::TrapKind::UncaughtException => {
                    eprintln!("Error: {}", trap.message());
                    ExitCode::from(TRAP_EXIT)
                }
                None => {
                    eprintln!("Error: {trap}");
                    ExitCode::from(TRAP_EXIT)
                }
            },
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The tier that `-C OPT=VAL,...` options ask for (`None`: not given).
/// `-C OPT=VAL,...`: the tier and whether to cache compiled code, when given.
fn codegen_opts(codegen_opts: &[String]) -> Result<(Option<carnac::Strategy>, Option<bool>), Error> {
    let (mut tier, mut cache) = (None, None);
    for opts in codegen_opts {
        for opt in opts.split(',') {
            match opt.split_once('=') {
                Some(("tier", v)) => tier = Some(v.parse().map_err(Error::Usage)?),
                Some(("cache", v)) => cache = Some(parse_flag("cache", v)?),
                _ => return Err(Error::Usage(format!("unsupported -C option `{opt}`"))),
            }
        }
    }
    Ok((tier, cache))
}

/// The tier `-C` asks `serve` for (the code cache is not an option there yet).
fn codegen_tier(opts: &[String]) -> Result<Option<carnac::Strategy>, Error> {
    match codegen_opts(opts)? {
        (_, Some(_)) => Err(Error::Usage("-C cache is not supported by `carnac serve` yet".into())),
        (tier, None) => Ok(tier),
    }
}

fn parse_size(s: &str) -> Result<usize, Error> {
    let bad = || Error::Usage(format!("invalid size `{s}` (bytes, or with a K, M or G suffix)"));
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<usize>().ok().and_then(|n| n.checked_mul(mult)).ok_or_else(bad)
}

fn parse_duration(s: &str) -> Result<Duration, Error> {
    let bad = || Error::Usage(format!("invalid duration `{s}` (e.g. 500ms, 5s, 2m)"));
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
    let value: f64 = s[..split].parse().map_err(|_| bad())?;
    let secs = match &s[split..] {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

fn parse_flag(opt: &str, v: &str) -> Result<bool, Error> {
    parse_flag_of('C', opt, v)
}

/// A `y`/`n` value of `-{flag} opt=v`.
fn parse_flag_of(flag: char, opt: &str, v: &str) -> Result<bool, Error> {
    match v {
        "y" | "yes" | "true" | "on" => Ok(true),
        "n" | "no" | "false" | "off" => Ok(false),
        _ => Err(Error::Usage(format!("invalid -{flag} {opt}=`{v}` (expected y or n)"))),
    }
}

/// `-W NAME=y|n` (or `-W NAME`, meaning `y`) for a WebAssembly proposal, in
/// Wasmtime's names: applied to `config`. `None` when `opt` names no proposal.
/// Gives the proposal's name and whether it is now on.
fn wasm_feature<'a>(config: &mut Config, opt: &'a str) -> Option<Result<(&'a str, bool), Error>> {
    let (name, v) = opt.split_once('=').unwrap_or((opt, "y"));
    let set: fn(&mut Config, bool) -> &mut Config = match name {
        "bulk-memory" => Config::wasm_bulk_memory,
        "reference-types" => Config::wasm_reference_types,
        "multi-value" => Config::wasm_multi_value,
        "simd" => Config::wasm_simd,
        "relaxed-simd" => Config::wasm_relaxed_simd,
        "extended-const" => Config::wasm_extended_const,
        "multi-memory" => Config::wasm_multi_memory,
        "threads" => Config::wasm_threads,
        "tail-call" => Config::wasm_tail_call,
        "memory64" => Config::wasm_memory64,
        "function-references" => Config::wasm_function_references,
        "gc" => Config::wasm_gc,
        "exceptions" => Config::wasm_exceptions,
        _ => return None,
    };
    Some(parse_flag_of('W', name, v).map(|on| {
        set(config, on);
        (name, on)
    }))
}

/// `-S OPT=VAL,...`: whether wasi-threads is offered, and the thread limit.
fn wasi_opts(opts: &[String]) -> Result<(bool, Option<usize>), Error> {
    let (mut threads, mut max_threads) = (true, None);
    for opt in opts.iter().flat_map(|o| o.split(',')) {
        match opt.split_once('=').unwrap_or((opt, "y")) {
            ("threads", v) => threads = parse_flag_of('S', "threads", v)?,
            ("max-threads", v) => {
                max_threads = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| Error::Usage(format!("invalid -S max-threads=`{v}` (a positive count)")))?,
                )
            }
            _ => return Err(Error::Usage(format!("unsupported -S option `{opt}`"))),
        }
    }
    Ok((threads, max_threads))
}

/// `carnac compile`: the module compiled with Cranelift, serialized.
fn compile(args: CompileArgs) -> Result<(), Error> {
    if !carnac::Strategy::Cranelift.is_available() {
        return Err(Error::Usage(
            "this carnac has no compiler (built without the `cranelift` feature): it runs .cwasm artifacts \
             compiled by a full build, but cannot make them"
                .into(),
        ));
    }
    let mut config = Config::new();
    config.strategy(carnac::Strategy::Cranelift);
    for opt in args.wasm_opts.iter().flat_map(|o| o.split(',')) {
        if let Some(applied) = wasm_feature(&mut config, opt) {
            applied?;
            continue;
        }
        match opt.split_once('=') {
            Some(("fuel", v)) => {
                v.parse::<u64>().map_err(|_| Error::Usage(format!("invalid fuel `{v}`")))?;
                config.consume_fuel(true);
            }
            Some(("timeout", v)) => {
                parse_duration(v)?;
                config.interruptible(true);
            }
            Some(("max-memory-size", v)) => drop(parse_size(v)?),
            _ => return Err(Error::Usage(format!("unsupported -W option `{opt}`"))),
        }
    }
    for opt in args.codegen_opts.iter().flat_map(|o| o.split(',')) {
        match opt.split_once('=') {
            Some(("tier", "cranelift")) => {}
            Some(("tier", v)) => {
                return Err(Error::Usage(format!("cannot compile for tier `{v}`: only `cranelift` has machine code")))
            }
            _ => return Err(Error::Usage(format!("unsupported -C option `{opt}`"))),
        }
    }
    let output = args.output.unwrap_or_else(|| args.module.with_extension("cwasm"));
    let module = Module::from_file(&Engine::new(&config), &args.module)?;
    let bytes = module.serialize()?;
    write_replacing(&output, &bytes).map_err(|e| Error::Io(format!("cannot write {}: {e}", output.display())))
}

/// A module refused because it uses threads while `-W threads=n` turned them
/// off: said in the flag's words.
fn threads_refused(e: Error, threads_proposal: bool) -> Error {
    if threads_proposal {
        return e;
    }
    let msg = e.to_string();
    if msg.contains("thread") || msg.contains("shared") || msg.contains("atomic") {
        Error::Usage(format!("{msg} (the module uses the threads proposal, turned off by -W threads=n)"))
    } else {
        e
    }
}

/// Writes `bytes` to a new file next to `path`, then renames it over `path`:
/// a process running an artifact maps its file, and must not see it change
/// under it (renaming leaves the old file intact until it is unmapped).
fn write_replacing(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether the file starts like a compiled artifact (unreadable: no; reading reports it later).
fn is_artifact_file(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && Module::is_artifact(&head)
}

/// WASI as `carnac run` gives it: the host's stdio, argv (the module's file name,
/// then `args`), `--env` variables and `--dir` preopens.
fn wasi_builder(
    module: &std::path::Path,
    args: &[String],
    env: &[String],
    dirs: &[String],
) -> Result<carnac_wasi::WasiCtxBuilder, Error> {
    let mut wasi = WasiCtx::builder();
    wasi.inherit_stdio();
    // argv[0] is the module's file name without its directory, as Wasmtime
    // passes it: the guest learns nothing of the host's paths.
    let program = module.file_name().map_or_else(|| module.display().to_string(), |n| n.to_string_lossy().into_owned());
    wasi.arg(program);
    wasi.args(args.iter().cloned());
    for e in env {
        match e.split_once('=') {
            Some((k, v)) => wasi.env(k, v),
            None => match std::env::var(e) {
                Ok(v) => wasi.env(e, &v),
                Err(_) => &mut wasi,
            },
        };
    }
    for d in dirs {
        let (host, guest) = d.split_once("::").unwrap_or((d, d));
        if host.is_empty() || guest.is_empty() {
            return Err(Error::Usage(format!("invalid --dir `{d}`: expected HOST or HOST::GUEST")));
        }
        wasi.preopened_dir(host, guest).map_err(|e| Error::Usage(format!("--dir {d}: {e}")))?;
    }

    Ok(wasi)
}

/// `carnac snapshot`: instantiates the module with WASI, calls its init export
/// once, and writes the state it leaves as a new module.
fn snapshot(args: SnapshotArgs) -> Result<(), Error> {
    let (tier, cache) = codegen_opts(&args.codegen_opts)?;
    let mut config = Config::new();
    if let Some(tier) = tier {
        config.strategy(tier);
    }
    config.cache(cache.unwrap_or(true) && tier != Some(carnac::Strategy::Interpreter));
    let engine = Engine::new(&config);
    let module = Module::from_file(&engine, &args.module)?;
    let mut wasi = wasi_builder(&args.module, &args.args, &args.env, &args.dir)?;
    let mut store = Store::new(&engine, wasi.build());
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
    let instance = linker.instantiate(&mut store, &module)?;
    let name = &args.init_func;
    let init = instance.get_func(&store, name).ok_or_else(|| {
        Error::Usage(format!(
            "{}: module exports no function `{name}` to initialise it (name another with --init-func)",
            args.module.display()
        ))
    })?;
    match init.call(&mut store, &[], &mut []) {
        Ok(()) => {}
        Err(Error::Trap(trap)) => {
            return Err(match trap.downcast_host::<I32Exit>() {
                Some(exit) => Error::Usage(format!("`{name}` exited with status {} instead of returning", exit.0)),
                None => Error::Usage(format!("`{name}` trapped: {trap}")),
            })
        }
        Err(e) => return Err(e),
    }
    let bytes = instance.snapshot(&store)?.to_wasm(&[name.as_str()])?;
    write_replacing(&args.output, &bytes).map_err(|e| Error::Io(format!("cannot write {}: {e}", args.output.display())))
}

fn run(mut args: RunArgs) -> Result<u8, Error> {
    let (mut features, mut threads_proposal) = (Config::new(), true);
    for opts in std::mem::take(&mut args.wasm_opts) {
        for opt in opts.split(',') {
            if let Some(applied) = wasm_feature(&mut features, opt) {
                if let ("threads", on) = applied? {
                    threads_proposal = on;
                }
                continue;
            }
            match opt.split_once('=') {
                Some(("fuel", v)) => {
                    args.fuel = Some(v.parse().map_err(|_| Error::Usage(format!("invalid fuel `{v}`")))?)
                }
                Some(("max-memory-size", v)) => args.max_memory = Some(v.to_string()),
                Some(("timeout", v)) => args.timeout = Some(v.to_string()),
                _ => return Err(Error::Usage(format!("unsupported -W option `{opt}`"))),
            }
        }
    }
    let (wasi_threads, max_threads) = wasi_opts(&args.wasi_opts)?;
    let (tier, cache) = codegen_opts(&args.codegen_opts)?;
    let cache = cache.unwrap_or(true);
    // An artifact holds compiled code: it runs in the compiled tier unless told otherwise.
    // Otherwise the library's default: automatic tiering where the compiled
    // tier is built, the interpreter elsewhere.
    let tier = tier.or_else(|| is_artifact_file(&args.module).then_some(carnac::Strategy::Cranelift));
    let timeout = args.timeout.as_deref().map(parse_duration).transpose()?;
    let max_memory = args.max_memory.as_deref().map(parse_size).transpose()?;

    let mut wasi = wasi_builder(&args.module, &args.args, &args.env, &args.dir)?;
    for addr in &args.tcplisten {
        let listener =
            std::net::TcpListener::bind(addr).map_err(|e| Error::Usage(format!("--tcplisten {addr}: {e}")))?;
        wasi.preopened_socket(listener);
    }

    // A wasi-threads program needs interrupts (its end stops every thread):
    // read from the binary's imports (in its first MiB) before compiling; a
    // text module, or one whose imports end further in, is loaded again with
    // them when it turns out to need them.
    let threaded_binary = wasi_threads && {
        use std::io::Read;
        let mut head = Vec::new();
        std::fs::File::open(&args.module).and_then(|f| f.take(1 << 20).read_to_end(&mut head)).is_ok()
            && carnac_wasi::threads::binary_imports_thread_spawn(&head) == Some(true)
    };
    let mut config = features;
    if let Some(tier) = tier {
        config.strategy(tier);
    }
    config
        .consume_fuel(args.fuel.is_some())
        .interruptible(timeout.is_some() || threaded_binary)
        .lazy_validation(args.lazy_validation)
        .cache(cache && tier != Some(carnac::Strategy::Interpreter));
    let mut engine = Engine::new(&config);
    let mut module = Module::from_file(&engine, &args.module).map_err(|e| threads_refused(e, threads_proposal))?;
    let threaded = wasi_threads && carnac_wasi::threads::imports_thread_spawn(&module);
    if threaded && !threaded_binary && !is_artifact_file(&args.module) {
        config.interruptible(true);
        engine = Engine::new(&config);
        module = Module::from_file(&engine, &args.module)?;
    }
    if std::env::var_os("CARNAC_CACHE_LOG").is_some() {
        let s = engine.cache_stats();
        eprintln!("carnac cache: {} hit, {} miss, {} stored, {} corrupt", s.hits, s.misses, s.stores, s.corrupt);
    }
    let mut ctx = wasi.build();
    let mut linker: Linker<WasiCtx> = Linker::new(&engine);
    carnac_wasi::add_to_linker(&mut linker, |ctx| ctx)?;
    carnac_wasi::threads::define_shared_memories(&mut linker, &module)?;
    let group = if threaded {
        carnac_wasi::threads::add_to_linker(&mut linker, |ctx| ctx)?;
        let mut threads = carnac_wasi::threads::ThreadsConfig::new();
        threads.on_limit(|n| {
            eprintln!(
                "carnac: the program reached its limit of {n} live threads; thread creation fails with EAGAIN \
                 (raise the limit with -S max-threads=N)"
            )
        });
        threads.on_spawn_error(|e| eprintln!("carnac: a thread could not be started (EAGAIN to the program): {e}"));
        if let Some(n) = max_threads {
            threads.max_threads(n);
        }
        if let Some(bytes) = max_memory {
            threads.configure_store(move |store| {
                store.set_limiter(StoreLimits::new().memory_size(bytes));
                Ok(())
            });
        }
        let group = carnac_wasi::threads::ThreadGroup::new(threads, &module, &linker, |ctx: &mut WasiCtx| ctx.share());
        group.attach(&mut ctx);
        Some(group)
    } else {
        None
    };
    let mut store = Store::new(&engine, ctx);
    if let Some(fuel) = args.fuel {
        store.set_fuel(fuel)?;
    }
    if let Some(bytes) = max_memory {
        store.set_limiter(StoreLimits::new().memory_size(bytes));
    }
    if let Some(group) = &group {
        group.add_main(&store);
    }
    if let Some(t) = timeout {
        // One deadline for the whole program: every thread is interrupted.
        let handle = store.interrupt_handle()?;
        let group = group.clone();
        std::thread::spawn(move || {
            std::thread::sleep(t);
            match group {
                Some(group) => group.interrupt(),
                None => handle.interrupt(),
            }
        });
    }
    let instance = linker.instantiate(&mut store, &module);
    // A threaded program's outcome is its thread group's (a thread's exit or trap).
    let end = |result: Result<(), Error>| match &group {
        Some(group) => group.finish(result),
        None => result,
    };
    let instance = match instance {
        Ok(i) => i,
        Err(e) => return end(Err(e)).map(|()| 0),
    };

    let Some(name) = args.invoke.as_deref() else {
        let Some(start) = instance.get_func(&store, "_start") else {
            return Err(Error::Usage(format!(
                "{}: module exports no `_start`; use --invoke NAME to call an export",
                args.module.display()
            )));
        };
        end(start.call(&mut store, &[], &mut []))?;
        return Ok(0);
    };
    let func = instance
        .get_func(&store, name)
        .ok_or_else(|| Error::Usage(format!("module has no exported function `{name}`")))?;
    let ty = func.ty(&store);
    if args.args.len() != ty.params().len() {
        return Err(Error::Usage(format!(
            "`{name}` takes {} argument(s) {ty}, {} given",
            ty.params().len(),
            args.args.len()
        )));
    }
    let params = ty
        .params()
        .iter()
        .zip(&args.args)
        .map(|(t, a)| Val::parse(t.clone(), a).map_err(Error::Usage))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = vec![Val::I32(0); ty.results().len()];
    end(func.call(&mut store, &params, &mut results))?;
    for r in &results {
        println!("{r}");
    }
    Ok(0)
}
