//! `braid path` and `braid monitor`: change the paths of a running braid, and watch its
//! events, through its control socket.

use crate::status::sockets;
use braid_api::control::{request, PathRequest, RUN_DIR};
use braid_io::PathSpec;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

const PATH_HELP: &str = "\
NAME is the path's TUN device name (tun=NAME of its SPEC); SPEC is what --path takes, e.g.
  tun=bt2,local=10.77.3.1,peer=10.77.3.2/24[,netns=NS][,backup]
add opens and configures the device as at start, and existing connections join from it (a
server announces it with ADD_ADDR); del closes its subflows (REMOVE_ADDR to the peer) and
removes the device; set backup|regular changes its priority (MP_PRIO on its subflows).
Without --control: the only control socket in /run/braid.";

const MONITOR_HELP: &str = "\
One line per event as it happens, until the braid exits: created, established, closed,
announced, removed, sub_established, sub_closed (with the reason: reset, timeout, peer removed
address, local path gone, closed), sub_priority, and path_added, path_removed, path_down,
path_up, path_gone, path_priority. --json prints each event as the control socket sends it
(one JSON object per line). A monitor that reads too slowly loses events and says how many.
Without --control: the only control socket in /run/braid.";

/// Arguments of `braid path`.
#[derive(Args, Debug)]
#[command(after_help = PATH_HELP)]
pub struct PathArgs {
    #[command(subcommand)]
    op: PathOp,
    /// The control socket of the braid to change (as printed at its start).
    #[arg(long, value_name = "PATH", global = true)]
    control: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum PathOp {
    /// Adds a path over a new TUN device.
    Add {
        /// The path, as --path takes it.
        #[arg(value_name = "SPEC")]
        spec: String,
    },
    /// Removes a path (its subflows close, its device goes).
    Del {
        /// The path's TUN device name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Makes a path a backup path or a regular one.
    Set {
        /// The path's TUN device name.
        #[arg(value_name = "NAME")]
        name: String,
        /// backup or regular.
        #[arg(value_name = "PRIORITY", value_parser = ["backup", "regular"])]
        priority: String,
    },
}

/// Arguments of `braid monitor`.
#[derive(Args, Debug)]
#[command(after_help = MONITOR_HELP)]
pub struct MonitorArgs {
    /// The control socket of the braid to watch (as printed at its start).
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// One JSON object per event.
    #[arg(long)]
    json: bool,
}

/// The socket to talk to: `--control`, else the only live one in /run/braid.
fn pick_socket(control: Option<PathBuf>, cmd: &str) -> Result<PathBuf, ExitCode> {
    if let Some(p) = control {
        return Ok(p);
    }
    let live: Vec<PathBuf> = sockets()
        .into_iter()
        .filter(|p| UnixStream::connect(p).is_ok())
        .collect();
    match live.len() {
        0 => {
            eprintln!("braid {cmd}: no running braid (no live control socket in {RUN_DIR})");
            Err(ExitCode::from(1))
        }
        1 => Ok(live.into_iter().next().expect("one")),
        _ => {
            let list: Vec<String> = live.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "braid {cmd}: {} braids are running; choose one with --control PATH: {}",
                live.len(),
                list.join(", ")
            );
            Err(ExitCode::from(2))
        }
    }
}

/// Runs `braid path`.
pub fn path_main(args: PathArgs) -> ExitCode {
    let (req, spec_text) = match &args.op {
        PathOp::Add { spec } => match spec.parse::<PathSpec>() {
            Ok(p) => (PathRequest::Add(p), Some(spec.as_str())),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        PathOp::Del { name } => (PathRequest::Del(name.clone()), None),
        PathOp::Set { name, priority } => (
            PathRequest::Set {
                name: name.clone(),
                backup: priority == "backup",
            },
            None,
        ),
    };
    let sock = match pick_socket(args.control, "path") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut msg = req.to_json(spec_text);
    if let Value::Object(m) = &mut msg {
        m.insert("cmd".into(), json!("path"));
        m.insert("id".into(), json!(1));
    }
    match request(&sock, &msg) {
        Ok(a) if a["ok"] == true => {
            let r = &a["result"];
            let tun = r["tun"].as_str().unwrap_or("?");
            let local = r["local"].as_str().unwrap_or("?");
            let prio = if r["backup"] == true {
                "backup"
            } else {
                "regular"
            };
            match req {
                PathRequest::Add(_) => println!("added path {tun} (local {local}, {prio})"),
                PathRequest::Del(_) => println!("removed path {tun} (local {local})"),
                PathRequest::Set { .. } => println!("path {tun} (local {local}) is now {prio}"),
            }
            ExitCode::SUCCESS
        }
        Ok(a) => {
            eprintln!(
                "braid path: {}",
                a["error"].as_str().unwrap_or("the braid refused")
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("braid path: {e}");
            ExitCode::from(1)
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of Unix seconds.
fn clock(t: f64) -> String {
    let ms = (t * 1000.0).round() as u64;
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

/// One event as a human line: time, name, connection, path, addresses, then the rest.
pub fn human_line(v: &Value) -> String {
    let Value::Object(m) = v else {
        return v.to_string();
    };
    let mut out = format!(
        "{} {:<15}",
        m.get("time")
            .and_then(Value::as_f64)
            .map_or("-".into(), clock),
        m.get("event").and_then(Value::as_str).unwrap_or("?")
    );
    if let Some(c) = m.get("conn").filter(|c| !c.is_null()) {
        out += &format!(" conn {c}");
    }
    for k in ["path", "tun"] {
        if let Some(p) = m.get(k).and_then(Value::as_str) {
            out += &format!(" {p}");
        }
    }
    match (
        m.get("local").and_then(Value::as_str),
        m.get("remote").and_then(Value::as_str),
    ) {
        (Some(l), Some(r)) => out += &format!(" {l} -> {r}"),
        (Some(l), None) => out += &format!(" {l}"),
        (None, Some(r)) => out += &format!(" -> {r}"),
        (None, None) => {}
    }
    for (k, val) in m {
        if matches!(
            k.as_str(),
            "event" | "time" | "conn" | "path" | "tun" | "local" | "remote"
        ) || val.is_null()
        {
            continue;
        }
        match val {
            Value::String(s) => out += &format!(" {k}={s}"),
            other => out += &format!(" {k}={other}"),
        }
    }
    out
}

/// Runs `braid monitor`.
pub fn monitor_main(args: MonitorArgs) -> ExitCode {
    let sock = match pick_socket(args.control, "monitor") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let mut s = match UnixStream::connect(&sock) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("braid monitor: {}: {e}", sock.display());
            return ExitCode::from(1);
        }
    };
    if let Err(e) = writeln!(s, "{}", json!({"id": 1, "cmd": "monitor"})) {
        eprintln!("braid monitor: {}: {e}", sock.display());
        return ExitCode::from(1);
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match r.read_line(&mut line) {
        Ok(n) if n > 0 => {}
        _ => {
            eprintln!("braid monitor: {}: no answer", sock.display());
            return ExitCode::from(1);
        }
    }
    match serde_json::from_str::<Value>(&line) {
        Ok(a) if a["ok"] == true => {}
        Ok(a) => {
            eprintln!(
                "braid monitor: {}: {}",
                sock.display(),
                a["error"].as_str().unwrap_or("refused")
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("braid monitor: {}: bad answer: {e}", sock.display());
            return ExitCode::from(1);
        }
    }
    let stdout = std::io::stdout();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return ExitCode::SUCCESS,
            Ok(_) => {}
        }
        let text = if args.json {
            line.trim_end().to_string()
        } else {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => human_line(&v),
                Err(_) => line.trim_end().to_string(),
            }
        };
        let mut out = stdout.lock();
        if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
            return ExitCode::SUCCESS;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lines_name_the_subflow_and_reason() {
        let v = json!({"event": "sub_closed", "time": 3723.5, "conn": 2, "path": "bt1",
            "local": "10.0.1.1:4000", "remote": "10.0.0.2:80", "reason": "local path gone"});
        assert_eq!(
            human_line(&v),
            "01:02:03.500 sub_closed      conn 2 bt1 10.0.1.1:4000 -> 10.0.0.2:80 reason=local path gone"
        );
        let v = json!({"event": "lost", "count": 5});
        assert_eq!(human_line(&v), "- lost            count=5");
    }
}
