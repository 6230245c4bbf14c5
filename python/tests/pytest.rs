//! Runs the Python test suite from `cargo test`, so that the README's one test
//! command covers Rust and Python: builds the package with maturin into a virtual
//! environment of its own (`target/python-venv`, made on first use), then runs
//! `pytest python/tests` with the Rust peer this crate builds
//! (`src/bin/stream_peer.rs`). Fails, never skips, if any step fails: a machine
//! without python3 or PyPI cannot run the suite, and says so.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

fn run(what: &str, cmd: &mut Command) {
    eprintln!("pytest.rs: {what}");
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("pytest.rs: {what} failed ({s})");
            exit(1)
        }
        Err(e) => {
            eprintln!("pytest.rs: {what}: cannot run {:?}: {e}", cmd.get_program());
            exit(1)
        }
    }
}

/// `$PATH` with `dir` in front.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).expect("paths without ':'")
}

fn main() {
    // `cargo test -- --list` and filters are for Rust tests; this file is one
    // test that runs the whole Python suite.
    if std::env::args().any(|a| a == "--list") {
        println!("python_suite: test");
        return;
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = crate_dir.parent().expect("python/ is in the repository");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let venv = target.join("python-venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        run(
            "make a virtual environment",
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
        );
    }
    run(
        "install maturin, numpy and pytest",
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "maturin>=1.5,<2",
            "numpy",
            "pytest",
        ]),
    );
    run(
        "build and install the package (pip install ./python)",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-build-isolation",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(crate_dir)
            // Its own target directory: no lock shared with the cargo running us.
            .env("CARGO_TARGET_DIR", target.join("maturin"))
            // The build backend runs the venv's `maturin`.
            .env("PATH", path_with(&venv.join("bin"))),
    );
    run(
        "pytest python/tests",
        Command::new(&python)
            .args(["-m", "pytest", "-q", "python/tests"])
            .current_dir(repo)
            .env("SHMBATCH_PEER", env!("CARGO_BIN_EXE_stream_peer")),
    );
}
