//! The C test programs in `tests/c/`: each is compiled with the system C
//! compiler against `include/` and the built `libcarnac`, run, and its
//! output compared exactly with what it must print. The last test runs them
//! all again under valgrind's leak checker.
//!
//! `cargo test` builds the library (the crate's `cdylib` and `staticlib`)
//! before running these tests, into the target directory that holds this
//! test binary (`target/<profile>/`, the parent of `deps/`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/`, where cargo puts libcarnac.so and libcarnac.a.
///
/// `cargo test` does not build a crate's `cdylib` and `staticlib` for its
/// integration tests (it builds them only when the crate has an `rlib` for
/// the tests to link, and this one cannot: see Cargo.toml), so the first test
/// to get here builds them with `cargo build -p carnac-c-api`, in the same
/// profile and target directory as this test binary; when they are up to
/// date that takes a moment.
fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // target/<profile>/deps/<test binary>
            let profile_dir = exe.parent().and_then(Path::parent).ok_or("unexpected test binary path")?.to_path_buf();
            let target_dir = profile_dir.parent().ok_or("unexpected test binary path")?;
            let profile = profile_dir.file_name().and_then(|n| n.to_str()).ok_or("unexpected profile directory")?;
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "-p", "carnac-c-api", "--lib", "--target-dir"]).arg(target_dir);
            match profile {
                "debug" => {}
                "release" => {
                    cmd.arg("--release");
                }
                other => {
                    cmd.args(["--profile", other]);
                }
            }
            let output = cmd.current_dir(crate_dir()).output().map_err(|e| format!("running cargo: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "cargo build -p carnac-c-api failed:\n{}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            for lib in ["libcarnac.so", "libcarnac.a"] {
                if !profile_dir.join(lib).exists() {
                    return Err(format!("{} is missing after the build", profile_dir.join(lib).display()));
                }
            }
            Ok(profile_dir)
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `tests/c/<name>.c` into `<out>/<name>`, linked against the shared
/// library (or the static one), with every warning an error.
fn compile(name: &str, out: &Path, static_lib: bool) -> PathBuf {
    std::fs::create_dir_all(out).unwrap();
    let lib = lib_dir();
    let exe = out.join(name);
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-std=c11", "-g", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("tests/c").join(format!("{name}.c")))
        .arg("-o")
        .arg(&exe);
    if static_lib {
        cc.arg(lib.join("libcarnac.a")).args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s"]);
    } else {
        cc.arg("-L").arg(&lib).arg("-lcarnac").arg(format!("-Wl,-rpath,{}", lib.display())).arg("-lpthread");
    }
    let output = cc.output().expect("running the C compiler (cc)");
    assert!(output.status.success(), "compiling {name}.c failed:\n{}", String::from_utf8_lossy(&output.stderr));
    exe
}

/// Where a test's programs go.
fn out_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c-api").join(sub)
}

/// Arguments some programs take: a scratch directory of their own.
fn args_for(name: &str, out: &Path) -> Vec<String> {
    match name {
        "wasi" => {
            let scratch = out.join("wasi-scratch");
            std::fs::create_dir_all(&scratch).unwrap();
            vec![scratch.display().to_string()]
        }
        _ => Vec::new(),
    }
}

/// Runs `exe` (optionally under a wrapper command) and returns its stdout,
/// failing the test unless it exits with 0.
fn run(exe: &Path, args: &[String], wrapper: &[&str]) -> (String, String) {
    let mut cmd = match wrapper.split_first() {
        Some((w, rest)) => {
            let mut c = Command::new(w);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let output = cmd.args(args).output().expect("running a C test program");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{} {:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        exe.display(),
        wrapper,
        output.status
    );
    (stdout, stderr)
}

fn check(name: &str, expected: &str) {
    let out = out_dir("plain");
    let exe = compile(name, &out, false);
    let (stdout, _) = run(&exe, &args_for(name, &out), &[]);
    assert_eq!(stdout, expected, "the output of {name}.c");
}

const HELLO: &str = "\
hello from the host: 20
run(20) = 41
pair(41) = 42, 0.5
trap: negative input
callback calls: 2
hello from the host: 5
hello(5) = 10
hello from the host: 105
foreign released in the callback
hello from the host: 1
finalizer: run(1) = 3
outer(5) = 212
finalized before store delete: 0
finalized after store delete: 10
go() after deleting every handle = 99
";

const GLOBALS: &str = "\
counter: kind 0, mutability 1
counter = 7
pi = 3.25
bump() = 8
host var after bump = 42
bump() after set = 41
pi after refused set = 3.25
counter after wrong-kind set = 41 (kind 0)
read_const() = 1.5
";

const MEMORY: &str = "\
limits: min 2, max 3
pages 2, bytes 131072
data[0x1000..0x1004] = 1 2 3 4
load(0x2000) = 99
data[0x2001] = 42
after grow(1): pages 3, bytes 196608
grow past max refused: pages 3
memory.grow(1) from wasm = -1
memory.size = 3
code 1: trap: out of bounds memory access
host memory: pages 2, last byte of page 0 = 7, page 1 zeroed = 0
limited store: memory.grow(1) = -1
trap: resource limit exceeded: memory of 3 pages (196608 bytes) is over the store's limits
";

const TABLES: &str = "\
funcs: element kind 129, limits 2..10, size 2
call(0) = 1
trap: uninitialized element
trap: out of bounds table access
table[0]() = 1
call(1) after set = 7
size after grow = 5
call(4) = 7
size after refused grow = 5
externref same: 1, host info: 1234
";

const TRAPS: &str = "\
origin: func 0, instance (nil)
trace: 0 1 2
code 0: trap: unreachable
code 6: trap: integer divide by zero
code 11: trap: made by the host
code 8: trap: call stack exhausted
code 9: trap: all fuel consumed
fuel left: 0
code 10: trap: interrupted
epoch: code 10: trap: interrupted
";

const REFUSED: &str = "\
garbage: validate 0, new null
error: invalid module at offset 0x4: unknown binary version:        0x2
invalid: validate 0, new null
error: invalid module at offset 0x18: type mismatch: expected i32 but nothing on stack
text through wasm_module_new: null
error: invalid module at offset 0xb: SIMD support is not enabled
trap: module needs 2 imports, 0 were given
trap: incompatible import type for `env::f`: expected a function (func (param i32)), found a function (func (result i32))
trap: wasm_instance_new: import 0 is null or not an extern
trap: incompatible import type for `env::f`: the definition belongs to a different store
trap: expected 0 arguments, got 1
trap: the results vector must have room for exactly 1 values
trap: the results vector must have room for exactly 1 values
trap: wasm_func_call: the function is null or not a function
trap: wasm_func_call: the function is null or not a function
null and wrong-kind arguments: ok
";

const THREADS: &str = "\
store 1: total 20100 after 200 callbacks
store 2: total 20300 after 200 callbacks
store 3: total 20500 after 200 callbacks
store 4: total 20700 after 200 callbacks
";

const WASI: &str = "\
exit status 7 (trap code 11)
hello from wasi
guest.wasm
--flag
value
GREETING=bonjour
LANG=C
a line from stdin
exit status 7 (trap code 11)
exit status 7 (trap code 11)
file: hello from wasi
second
read through a preopened directory
cat: errno 0
cat without a preopen: errno 8
error: cannot open directory /no/such/directory: No such file or directory (os error 2)
error: unknown import: `env::missing` has not been defined
";

const REFLECT: &str = "\
import env.log: func(0 1)->()
import env.g: global 2 mut 1
import env.t: table 129 2..4294967295
export square: func(0)->(0)
export swap: func(3 0)->(0 3)
export memory: memory 1..5
export version: global 1 mut 0
export table: table 128 4..4294967295
host import m.n: memory 1..4294967295
host export e: func(2 128)->(129)
copied valtypes (1 3)
deserialized answer() = 42
error: only a module compiled with Strategy::Cranelift or Auto can be serialized
error: `host::limit` is already defined
linked twice() = 43
trap: unreachable
trap: unreachable
";

const EVERYTHING: &str = "\
extern views and types: ok
type views and copies: ok
frame offsets: in function yes, in module yes
vec valtype: ok
vec functype: ok
vec globaltype: ok
vec tabletype: ok
vec memorytype: ok
vec externtype: ok
vec importtype: ok
vec exporttype: ok
vec frame: ok
vec extern: ok
vec byte: ok
vec val: ok
ref func: ok
ref global: ok
ref table: ok
ref memory: ok
ref extern: ok
ref instance: ok
ref module: ok
ref trap: ok
ref foreign: ok
finalized before deleting the handles: 2
finalized after deleting the handles: 4
finalized at the end: 10
";

/// Every program and its exact output.
const PROGRAMS: &[(&str, &str)] = &[
    ("hello", HELLO),
    ("globals", GLOBALS),
    ("memory", MEMORY),
    ("tables", TABLES),
    ("traps", TRAPS),
    ("refused", REFUSED),
    ("threads", THREADS),
    ("wasi", WASI),
    ("reflect", REFLECT),
    ("everything", EVERYTHING),
];

#[test]
fn hello_with_host_callbacks() {
    check("hello", HELLO);
}

#[test]
fn globals() {
    check("globals", GLOBALS);
}

#[test]
fn memory_read_and_grow() {
    check("memory", MEMORY);
}

#[test]
fn tables() {
    check("tables", TABLES);
}

#[test]
fn traps_with_messages_and_frames() {
    check("traps", TRAPS);
}

#[test]
fn modules_refused_and_misuse() {
    check("refused", REFUSED);
}

#[test]
fn stores_on_threads() {
    check("threads", THREADS);
}

#[test]
fn wasi_through_carnac_h() {
    check("wasi", WASI);
}

#[test]
fn reflection_serialisation_and_linking() {
    check("reflect", REFLECT);
}

#[test]
fn every_function_family() {
    check("everything", EVERYTHING);
}

/// The static library links and runs too.
#[test]
fn hello_linked_statically() {
    let out = out_dir("static");
    let exe = compile("hello", &out, true);
    let (stdout, _) = run(&exe, &[], &[]);
    assert_eq!(stdout, HELLO);
}

/// Every function `wasm.h` declares is defined by libcarnac.so: the names
/// are read from the preprocessed header, the definitions from `nm`.
#[test]
fn every_standard_function_is_exported() {
    let pp = Command::new("cc")
        .args(["-E", "-P"])
        .arg(crate_dir().join("include/wasm.h"))
        .output()
        .expect("running the C preprocessor");
    assert!(pp.status.success());
    let names = declared_functions(&String::from_utf8_lossy(&pp.stdout));
    // The standard's header declares 280 functions (its inline helpers aside).
    assert_eq!(names.len(), 280, "functions found in wasm.h: {names:?}");
    let nm = Command::new("nm").args(["-D", "--defined-only"]).arg(lib_dir().join("libcarnac.so")).output();
    let Ok(nm) = nm else {
        println!("skipped: nm is not installed");
        return;
    };
    let defined: std::collections::HashSet<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(String::from))
        .collect();
    let missing: Vec<&String> = names.iter().filter(|n| !defined.contains(*n)).collect();
    assert!(missing.is_empty(), "declared in wasm.h but not defined: {missing:?}");
}

/// The `wasm_*` functions declared (not defined inline) in preprocessed C.
fn declared_functions(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(&text[i..end]);
        } else if !c.is_whitespace() {
            tokens.push(&text[i..i + c.len_utf8()]);
        }
    }
    let (mut braces, mut parens) = (0, 0);
    let mut statement: Vec<&str> = Vec::new();
    let mut names = Vec::new();
    for t in tokens {
        match t {
            "{" => braces += 1,
            "}" => {
                braces -= 1;
                if braces == 0 {
                    statement.clear();
                }
                continue;
            }
            _ => {}
        }
        if braces > 0 {
            continue;
        }
        match t {
            ";" => {
                statement.clear();
                continue;
            }
            "(" => {
                if parens == 0 && !matches!(statement.first(), Some(&("typedef" | "static" | "extern"))) {
                    if let Some(name) = statement.last().filter(|n| n.starts_with("wasm_")) {
                        names.push(name.to_string());
                    }
                }
                parens += 1;
            }
            ")" => parens -= 1,
            _ => {}
        }
        statement.push(t);
    }
    names
}

/// All the programs again under valgrind's memcheck: no invalid access, no
/// leak (definite or possible), same output.
#[test]
fn no_leaks_or_invalid_accesses_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("skipped: valgrind is not installed");
        return;
    }
    let out = out_dir("valgrind");
    for (name, expected) in PROGRAMS {
        let exe = compile(name, &out, false);
        let wrapper = [
            "valgrind",
            "--quiet",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,possible",
            "--show-leak-kinds=definite,possible",
            "--error-exitcode=99",
        ];
        let (stdout, stderr) = run(&exe, &args_for(name, &out), &wrapper);
        assert_eq!(&stdout, expected, "the output of {name}.c under valgrind (stderr: {stderr})");
        println!("{name}: clean under valgrind");
    }
}

/// The Python binding's own tests (`python/tests`, pytest), against the
/// library built for these tests (`CARNAC_LIB`). Skipped, saying so, when
/// python3 or pytest is missing (`.ci/run` installs pytest).
#[test]
fn python_binding_with_pytest() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&python).args(["-m", "pytest", "--version"]).output() {
        Ok(o) if o.status.success() => {}
        _ => {
            println!("skipped: {python} -m pytest is not available (pip install pytest)");
            return;
        }
    }
    let dir = crate_dir().join("python");
    let output = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&dir)
        .env("CARNAC_LIB", lib_dir().join("libcarnac.so"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(output.status.success(), "pytest failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("8 passed"), "expected 8 passing Python tests:\n{stdout}");
}

/// The fenced block of `lang` in README.md that contains `marker`.
fn readme_block(lang: &str, marker: &str) -> String {
    let readme = std::fs::read_to_string(crate_dir().join("../../README.md")).expect("README.md");
    let fence = format!("```{lang}\n");
    readme
        .split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("no {lang} block with {marker:?} in README.md"))
        .to_string()
}

/// The README's C example compiles and prints what it says.
#[test]
fn readme_c_example() {
    let out = out_dir("readme");
    std::fs::create_dir_all(&out).unwrap();
    let src = out.join("hello.c");
    std::fs::write(&src, readme_block("c", "wasm_func_new(store, type, double_it)")).unwrap();
    let lib = lib_dir();
    let exe = out.join("hello");
    let output = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(crate_dir().join("include"))
        .arg(&src)
        .arg("-L")
        .arg(&lib)
        .arg("-lcarnac")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("running cc");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(run(&exe, &[], &[]).0, "run(20) = 41\n");
}

/// The README's five-line Python example prints 5.
#[test]
fn readme_python_example() {
    let code = readme_block("python", "import carnac");
    let output = match Command::new("python3")
        .arg("-c")
        .arg(&code)
        .current_dir(crate_dir().join("python"))
        .env("CARNAC_LIB", lib_dir().join("libcarnac.so"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            println!("skipped: python3 is not installed");
            return;
        }
    };
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "5\n");
}
