//! WASI preview1 conformance, differential against Wasmtime.
//!
//! The guest `conformance` (crates/carnac-wasi/tests/guests/src/bin/conformance.rs)
//! calls every preview1 function with edge cases and prints one line per call
//! (`case: ERRNO [values]`). Its expected output, `tests/conformance/expected.txt`,
//! was recorded by running the same program on Wasmtime over the same fixture;
//! this test runs it with `carnac run` and compares case by case, so CI needs no
//! Wasmtime. To record again (after changing the guest):
//!
//! ```sh
//! ../shared/peers/install.sh /tmp/carnac-peers   # Wasmtime from PyPI
//! CARNAC_CONFORMANCE_RECORD=/tmp/carnac-peers/bin/wasmtime cargo test -p carnac-cli --test wasi_conformance
//! ```
//!
//! Where Carnac deliberately differs from Wasmtime, [`DIFFERENCES`] says so,
//! with Carnac's answer and the reason. It prints one `FAIL` line per case that
//! differs and `wasi conformance: N passed, M failed` (a case is one call), then
//! the same for the compiled tier (`carnac run -C tier=cranelift`), as
//! `wasi conformance (cranelift): N passed, M failed`.

#[path = "../../carnac-wasi/tests/guests.rs"]
mod guests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Cases where Carnac's answer is not Wasmtime's, on purpose:
/// (case, Carnac's result, why).
const DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "seek whence=1 offset=9223372036854775807",
        "INVAL",
        "Carnac's file position is the kernel's (so every descriptor of a file, and appends, agree on it), and \
         lseek refuses a position past i64::MAX; Wasmtime keeps a u64 position of its own",
    ),
    (
        "write 3 iovecs",
        "SUCCESS n=3",
        "Carnac writes every iovec with one writev, as POSIX does; Wasmtime writes only the first non-empty one \
         (a legal short write, which wasi-libc then repeats)",
    ),
    (
        "read iovec out of bounds",
        "trap",
        "Carnac checks every iovec against memory before it reads, so a bad buffer traps even when there is \
         nothing to read; Wasmtime touches memory only when data arrives (here stdin is at end of file)",
    ),
];

/// The directory tree every run starts from, preopened as `/sandbox`; `outside`
/// sits next to it (the guest must never reach it).
fn fixture(root: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(root);
    let sandbox = root.join("sandbox");
    std::fs::create_dir_all(sandbox.join("dir")).unwrap();
    std::fs::create_dir_all(sandbox.join("emptydir")).unwrap();
    std::fs::create_dir_all(sandbox.join("bigdir")).unwrap();
    std::fs::write(root.join("outside"), "outside the sandbox\n").unwrap();
    std::fs::write(sandbox.join("file"), "hello world\n").unwrap();
    std::fs::write(sandbox.join("empty"), "").unwrap();
    std::fs::write(sandbox.join("dir/nested"), "nested\n").unwrap();
    for i in 0..300 {
        std::fs::write(sandbox.join(format!("bigdir/f{i:03}")), "").unwrap();
    }
    let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, sandbox.join(name)).unwrap();
    link("file", "link-file");
    link("dir", "link-dir");
    link("missing-target", "dangling");
    link("loop", "loop");
    link("/etc/passwd", "link-abs");
    link("../outside", "link-up");
    sandbox
}

/// Runs the guest under `runtime` (`carnac` or `wasmtime`, same flags, then
/// `flags` of the runtime's own) with `args`; returns its stdout, whether it
/// exited successfully, and its stderr.
fn run_guest(runtime: &Path, flags: &[&str], sandbox: &Path, args: &[&str]) -> (String, bool, String) {
    let wasm = guests::guest("conformance");
    let out = Command::new(runtime)
        .arg("run")
        .args(flags)
        .arg("--dir")
        .arg(format!("{}::/sandbox", sandbox.display()))
        .args(["--env", "CONF_A=1", "--env", "CONF_B=x=y"])
        .arg(&wasm)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the conformance guest");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The whole run: the main program, then each call that Wasmtime answers with
/// a trap in a process of its own (its result is then `trap`).
fn run(runtime: &Path, flags: &[&str], sandbox: &Path) -> String {
    let (mut text, ok, err) = run_guest(runtime, flags, sandbox, &["a1", "two words"]);
    assert!(
        ok && text.contains("\ncases: "),
        "{} failed\nstdout tail:\n{}\nstderr:\n{err}",
        runtime.display(),
        text.lines().rev().take(5).collect::<Vec<_>>().join("\n"),
    );
    let (count, _, _) = run_guest(runtime, flags, sandbox, &["solo"]);
    let count: usize = count.trim().strip_prefix("solo cases: ").and_then(|n| n.parse().ok()).expect("solo case count");
    for i in 0..count {
        let (line, ok, _) = run_guest(runtime, flags, sandbox, &["solo", &i.to_string()]);
        match line.strip_suffix(": ") {
            Some(name) if !ok => text.push_str(&format!("{name}: trap\n")),
            _ => text.push_str(&line),
        }
    }
    text
}

/// The cases in output order; a name that repeats (the same call made again,
/// as `create_directory d1` twice) gets ` #2`, ` #3`… so every call counts.
fn cases(text: &str) -> Vec<(String, String)> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    text.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| {
            let n = seen.entry(k.to_string()).or_default();
            *n += 1;
            let name = if *n == 1 { k.to_string() } else { format!("{k} #{n}") };
            (name, v.to_string())
        })
        .collect()
}

/// A test binary of its own (`harness = false`), so that its summary line is
/// printed even when it passes.
fn main() {
    let expected_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/expected.txt");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wasi-conformance-{}", std::process::id()));
    if let Ok(wasmtime) = std::env::var("CARNAC_CONFORMANCE_RECORD") {
        let sandbox = fixture(&root);
        let text = run(Path::new(&wasmtime), &[], &sandbox);
        std::fs::create_dir_all(expected_file.parent().unwrap()).unwrap();
        std::fs::write(&expected_file, &text).unwrap();
        eprintln!("recorded {} cases from {wasmtime} into {}", cases(&text).len(), expected_file.display());
    }
    let expected = std::fs::read_to_string(&expected_file).expect("the recorded expected output");
    let expected = cases(&expected);
    for (c, _, _) in DIFFERENCES {
        assert!(expected.iter().any(|(e, _)| e == c), "DIFFERENCES names `{c}`, which is not a recorded case");
    }
    let mut failed = 0;
    // Both tiers give the same answers (the compiled one where it is built:
    // Linux on x86_64 and aarch64, see crates/carnac/build.rs).
    let compiled = cfg!(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")));
    for (label, flags) in [("wasi conformance", &[][..]), ("wasi conformance (cranelift)", &["-C", "tier=cranelift"])] {
        if !compiled && !flags.is_empty() {
            println!("{label}: not run, this host has no compiled tier");
            continue;
        }
        failed += conformance(&root, label, flags, &expected);
    }
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(failed, 0, "{failed} WASI cases differ from Wasmtime (see FAIL lines above)");
}

/// Runs the guest with `carnac run FLAGS` on a fresh fixture under `root` and
/// compares its answers with `expected`; prints `LABEL: N passed, M failed`
/// and returns M.
fn conformance(root: &Path, label: &str, flags: &[&str], expected: &[(String, String)]) -> usize {
    let sandbox = fixture(root);
    let actual = run(Path::new(env!("CARGO_BIN_EXE_carnac")), flags, &sandbox);
    assert!(
        std::fs::read_to_string(root.join("outside")).unwrap() == "outside the sandbox\n",
        "{label}: the guest changed a file outside its sandbox"
    );

    let actual: BTreeMap<String, String> = cases(&actual).into_iter().collect();
    let differences: BTreeMap<&str, (&str, &str)> = DIFFERENCES.iter().map(|(c, r, why)| (*c, (*r, *why))).collect();
    let (mut passed, mut failed) = (0, 0);
    for (case, want) in expected {
        let (want, note) = match differences.get(case.as_str()) {
            Some((carnac, why)) => {
                (carnac.to_string(), format!(" (differs from Wasmtime's `{want}` on purpose: {why})"))
            }
            None => (want.clone(), String::new()),
        };
        match actual.get(case) {
            Some(got) if *got == want => passed += 1,
            got => {
                failed += 1;
                println!(
                    "FAIL ({label}) {case}: expected `{want}`{note}, got `{}`",
                    got.map_or("<missing>", |g| g.as_str())
                );
            }
        }
    }
    println!("{label}: {passed} passed, {failed} failed");
    assert!(passed >= 400, "{label}: only {passed} cases");
    failed
}
