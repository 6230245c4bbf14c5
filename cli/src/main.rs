//! `shmbatch`: list, inspect and remove shmbatch segments, and benchmark shmbatch
//! against the hardware's limits and the alternatives.
//!
//! The benchmark is the default feature `bench`; without it
//! (`--no-default-features`) this is a slim admin tool: `ls`, `stat`, `rm`.

#![deny(unsafe_op_in_unsafe_fn, missing_debug_implementations)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod admin;
#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "bridge")]
mod bridge;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "shmbatch", version)]
#[cfg_attr(
    feature = "bench",
    command(about = "Inspect shmbatch segments and benchmark shmbatch")
)]
#[cfg_attr(
    not(feature = "bench"),
    command(about = "Inspect and remove shmbatch segments")
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the shmbatch segments on this machine.
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show everything in a segment's header (including the data offset for raw attach).
    Stat {
        /// Segment name ("prices" or "/prices").
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove segments by name (not one in use, unless forced), or every stale one.
    Rm {
        /// Segment names.
        #[arg(required_unless_present = "stale", conflicts_with = "stale")]
        names: Vec<String>,
        /// Remove every segment whose creator and attached peers are all dead, and
        /// every half-made one whose creator died.
        #[arg(long)]
        stale: bool,
        /// Remove a segment that live processes use, or a file that is not a valid
        /// shmbatch segment.
        #[arg(long)]
        force: bool,
    },
    /// Benchmark shmbatch against this machine's limits and the alternatives.
    #[cfg(feature = "bench")]
    Bench(bench::Args),
    /// Not in this build: says how to get a build with the benchmark.
    #[cfg(not(feature = "bench"))]
    #[command(hide = true, disable_help_flag = true)]
    Bench {
        /// Whatever options were given (ignored).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Carry a local queue to or from other hosts over zenoh.
    #[cfg(feature = "bridge")]
    #[command(subcommand)]
    Bridge(bridge::Command),
    /// Not in this build: says how to get a build with the bridge.
    #[cfg(not(feature = "bridge"))]
    #[command(hide = true, disable_help_flag = true)]
    Bridge {
        /// Whatever options were given (ignored).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Internal: the peer process of a benchmark.
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    BenchPeer {
        /// What to run, and its arguments.
        args: Vec<String>,
    },
    /// Internal (tests): create a segment, keep it, and exit.
    #[command(hide = true)]
    CreatePersistent {
        /// spsc, mpmc or array.
        kind: String,
        /// Segment name.
        name: String,
    },
    /// Internal: plot a JSON result file again.
    #[cfg(feature = "bench")]
    #[command(hide = true)]
    Plot {
        /// A file written by `bench --json`.
        json: std::path::PathBuf,
        /// The SVG to write.
        svg: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ls { json } => admin::ls(json),
        Command::Stat { name, json } => admin::stat(&name, json),
        Command::Rm {
            names,
            stale,
            force,
        } => admin::rm(&names, stale, force),
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench::run(&args),
        #[cfg(not(feature = "bench"))]
        Command::Bench { .. } => Err(NO_BENCH.into()),
        #[cfg(feature = "bridge")]
        Command::Bridge(cmd) => bridge::run(&cmd),
        #[cfg(not(feature = "bridge"))]
        Command::Bridge { .. } => Err(NO_BRIDGE.into()),
        #[cfg(feature = "bench")]
        Command::BenchPeer { args } => bench::peer(&args),
        Command::CreatePersistent { kind, name } => admin::create_persistent(&kind, &name),
        #[cfg(feature = "bench")]
        Command::Plot { json, svg } => bench::replot(&json, &svg),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shmbatch: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `shmbatch bench` says in a build without the `bench` feature.
#[cfg(not(feature = "bench"))]
const NO_BENCH: &str = "this shmbatch was built without the benchmark (feature `bench`); \
     build it with the default features: cargo install --locked --path cli";

/// What `shmbatch bridge` says in a build without the `bridge` feature.
#[cfg(not(feature = "bridge"))]
const NO_BRIDGE: &str = "this shmbatch was built without the zenoh bridge (feature `bridge`); \
     build it with: cargo install --locked --path cli --features bridge";

/// Errors of the command: a message for the user.
type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;
