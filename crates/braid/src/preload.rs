//! `braid run --preload`: PROG runs in braid's own namespace with an LD_PRELOAD shim.

use crate::run::RunArgs;
use std::process::ExitCode;

pub fn main(_args: RunArgs) -> ExitCode {
    eprintln!("braid: run --preload is not available in this build (use braid run without it)");
    ExitCode::from(2)
}
