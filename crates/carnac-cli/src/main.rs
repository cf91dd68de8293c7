//! `carnac`: the command-line front end. Argument parsing and wiring only; every
//! piece of behaviour lives in the `carnac` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use carnac::{Config, Engine, Error, Linker, Module, Store, Val};

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
    /// Run a WebAssembly module (binary `.wasm` or text `.wat`).
    Run(RunArgs),
}

#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
struct RunArgs {
    /// Call this exported function instead of `_start`; its results are printed one per line.
    #[arg(long, value_name = "NAME")]
    invoke: Option<String>,
    /// Run under fuel metering with this budget (one unit per instruction).
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// The module to run.
    module: PathBuf,
    /// Arguments for the invoked function.
    #[arg(allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Error::Trap(trap)) => {
                eprintln!("Error: {trap}");
                ExitCode::from(TRAP_EXIT)
            }
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(args: RunArgs) -> Result<(), Error> {
    let mut config = Config::new();
    config.consume_fuel(args.fuel.is_some());
    let engine = Engine::new(&config);
    let module = Module::from_file(&engine, &args.module)?;
    let mut store = Store::new(&engine, ());
    if let Some(fuel) = args.fuel {
        store.set_fuel(fuel)?;
    }
    let linker = Linker::new(&engine);
    let instance = linker.instantiate(&mut store, &module)?;
    let name = args.invoke.as_deref().unwrap_or("_start");
    let func = match instance.get_func(&store, name) {
        Some(f) => f,
        // A module without `_start` whose start section did the work is complete.
        None if args.invoke.is_none() && module.get_export("_start").is_none() && args.args.is_empty() => {
            return Err(Error::Usage(format!(
                "{}: module exports no `_start`; use --invoke NAME to call an export",
                args.module.display()
            )))
        }
        None => return Err(Error::Usage(format!("module has no exported function `{name}`"))),
    };
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
        .map(|(t, a)| Val::parse(*t, a).map_err(Error::Usage))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = vec![Val::I32(0); ty.results().len()];
    func.call(&mut store, &params, &mut results)?;
    for r in &results {
        println!("{r}");
    }
    Ok(())
}
