//! braid: userspace Multipath TCP — the command-line tool.
//!
//! Exit status: 0 on success, 1 when a run did not complete intact, 2 for usage errors.

#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod app;
mod capture;
mod forward;
mod net;
mod pathcmd;
mod plot;
mod preload;
mod proxy;
mod relay;
mod run;
mod sim;
mod socks;
mod status;
mod trace;
mod units;

#[derive(Parser, Debug)]
#[command(name = "braid", version, about = "braid: userspace Multipath TCP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a bulk transfer through the deterministic network simulator.
    Sim(sim::SimArgs),
    /// Accepts TCP connections over TUN devices and receives data (Linux or anything as peer).
    Listen(net::ListenArgs),
    /// Connects over TUN devices and sends data (to Linux's TCP or anything else).
    Connect(net::ConnectArgs),
    /// A SOCKS5 server whose connections go over Multipath TCP on braid's paths.
    Proxy(proxy::ProxyArgs),
    /// Shows what running braid commands are doing (connections, subflows).
    Status(status::StatusArgs),
    /// Adds, removes or changes a path of a running braid.
    Path(pathcmd::PathArgs),
    /// Prints a running braid's connection, subflow and path events as they happen.
    Monitor(pathcmd::MonitorArgs),
    /// Runs a program with all its TCP carried over MPTCP by braid (root: a network namespace).
    Run(run::RunArgs),
    /// Carries every local program's TCP towards the given prefixes over MPTCP (root).
    Capture(capture::CaptureArgs),
}

fn main() -> ExitCode {
    // clap exits with status 2 on usage errors (0 for --help / --version).
    let cli = Cli::parse();
    match cli.command {
        Command::Sim(args) => sim::main(args),
        Command::Listen(args) => net::listen(args),
        Command::Connect(args) => net::connect(args),
        Command::Proxy(args) => proxy::main(args),
        Command::Status(args) => status::main(args),
        Command::Path(args) => pathcmd::path_main(args),
        Command::Monitor(args) => pathcmd::monitor_main(args),
        Command::Run(args) => run::main(args),
        Command::Capture(args) => capture::main(args),
    }
}
