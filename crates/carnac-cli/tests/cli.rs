//! The `carnac` binary as a user runs it: results on stdout, one-line errors,
//! exit statuses.

use std::process::{Command, Output};

fn carnac(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_carnac"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("run carnac")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn invoke_prints_results() {
    let out = carnac(&["run", "--invoke", "fib", "examples/fib.wat", "20"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "6765\n");
    let out = carnac(&["run", "--invoke", "sum", "examples/fib.wat", "10"]);
    assert_eq!(text(&out.stdout), "45\n");
    // Negative arguments are values, not flags.
    let out = carnac(&["run", "--invoke", "divide", "examples/fib.wat", "-9", "2"]);
    assert_eq!(text(&out.stdout), "-4\n");
}

#[test]
fn trap_prints_message_and_backtrace() {
    let out = carnac(&["run", "--invoke", "divide", "examples/fib.wat", "1", "0"]);
    assert_eq!(out.status.code(), Some(134));
    let err = text(&out.stderr);
    assert!(err.contains("integer divide by zero"), "{err}");
    assert!(err.contains("wasm backtrace:"), "{err}");
}

#[test]
fn fuel_limits_execution() {
    let out = carnac(&["run", "--fuel", "1000", "--invoke", "fib", "examples/fib.wat", "25"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(text(&out.stderr).contains("all fuel consumed"), "{}", text(&out.stderr));
    let out = carnac(&["run", "--fuel", "100000000", "--invoke", "fib", "examples/fib.wat", "15"]);
    assert_eq!(text(&out.stdout), "610\n");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = std::env::temp_dir().join(format!("carnac-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x01\0\0\0\x01\x05\xff").unwrap();
    let garbage = garbage.to_str().unwrap();
    for args in [
        vec!["run", "--invoke", "fib", "no/such/file.wasm"],
        vec!["run", garbage],
        vec!["run", "examples/fib.wat"],
        vec!["run", "--invoke", "nope", "examples/fib.wat"],
        vec!["run", "--invoke", "fib", "examples/fib.wat"],
        vec!["run", "--invoke", "fib", "examples/fib.wat", "x"],
    ] {
        let out = carnac(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("Error: "), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
