//! `braid status`: what running braid commands are doing, read from their control sockets.

use crate::units::fmt_bytes;
use braid_api::control::{request, RUN_DIR};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `braid status`.
#[derive(Args, Debug)]
#[command(
    after_help = "Without --control, every socket in /run/braid is asked.\n\
--json prints one object per running braid, one line each (the control protocol's status result)."
)]
pub struct StatusArgs {
    /// The control socket of one braid (as printed at its start).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub(crate) fn sockets() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(RUN_DIR)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn opt_ms(v: &Value) -> String {
    v.as_f64().map_or("-".into(), |x| format!("{x:.1} ms"))
}

fn print_human(path: &std::path::Path, r: &Value) {
    let conns = r["connections"].as_array().cloned().unwrap_or_default();
    println!(
        "{} ({}, pid {}): {} connection{}",
        r["program"].as_str().unwrap_or("braid"),
        path.display(),
        r["pid"],
        conns.len(),
        if conns.len() == 1 { "" } else { "s" }
    );
    for p in r["paths"].as_array().into_iter().flatten() {
        println!(
            "  path {} local {} peer {}{}{}",
            p["tun"].as_str().unwrap_or("?"),
            p["local"].as_str().unwrap_or("?"),
            p["peer"].as_str().unwrap_or("?"),
            p["netns"]
                .as_str()
                .map(|n| format!(" (netns {n})"))
                .unwrap_or_default(),
            if p["backup"] == true { " backup" } else { "" }
        );
    }
    for c in conns {
        let kind = match (c["mptcp"].as_bool(), c["fallback"].as_bool()) {
            (Some(true), Some(false)) => "MPTCP",
            (Some(true), Some(true)) => "TCP (MPTCP fell back)",
            _ => "TCP",
        };
        println!(
            "  #{} {} {} -> {}  {}  {}  sent {} received {}",
            c["id"],
            c["direction"].as_str().unwrap_or(""),
            c["local"].as_str().unwrap_or("?"),
            c["remote"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            kind,
            fmt_bytes(c["bytes_sent"].as_u64().unwrap_or(0)),
            fmt_bytes(c["bytes_received"].as_u64().unwrap_or(0)),
        );
        for s in c["subflows"].as_array().into_iter().flatten() {
            let mut flags = String::new();
            if s["backup"].as_bool() == Some(true) {
                flags += " backup";
            }
            if s["peer_backup"].as_bool() == Some(true) {
                flags += " peer-backup";
            }
            println!(
                "      subflow {} -> {}  {}  sent {} acked {} retrans {}  srtt {}  cwnd {}{}",
                s["local"].as_str().unwrap_or("?"),
                s["remote"].as_str().unwrap_or("?"),
                s["state"].as_str().unwrap_or("?"),
                fmt_bytes(s["bytes_sent"].as_u64().unwrap_or(0)),
                fmt_bytes(s["bytes_acked"].as_u64().unwrap_or(0)),
                fmt_bytes(s["bytes_retransmitted"].as_u64().unwrap_or(0)),
                opt_ms(&s["srtt_ms"]),
                s["cwnd"],
                flags
            );
        }
    }
}

/// Runs `braid status`.
pub fn main(args: StatusArgs) -> ExitCode {
    let explicit = args.control.is_some();
    let paths = match args.control {
        Some(p) => vec![p],
        None => sockets(),
    };
    if paths.is_empty() {
        eprintln!("braid status: no running braid (no control socket in {RUN_DIR})");
        return ExitCode::from(1);
    }
    let mut ok = 0;
    for p in &paths {
        match request(p, &json!({"id": 1, "cmd": "status"})) {
            Ok(a) if a["ok"] == true => {
                ok += 1;
                let mut r = a["result"].clone();
                if let Value::Object(m) = &mut r {
                    m.insert("control".into(), json!(p.display().to_string()));
                }
                if args.json {
                    println!("{r}");
                } else {
                    print_human(p, &r);
                }
            }
            Ok(a) => eprintln!(
                "braid status: {}: {}",
                p.display(),
                a["error"].as_str().unwrap_or("error")
            ),
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::ConnectionRefused => {
                eprintln!(
                    "braid status: {}: stale socket (no braid behind it)",
                    p.display()
                )
            }
            Err(e) => eprintln!("braid status: {e}"),
        }
    }
    if ok == 0 {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
