//! The `braid` binary as a user runs it.

use std::process::{Command, Output};

fn braid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .output()
        .expect("run braid")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_delay_is_a_usage_error_naming_it() {
    let o = braid(&["sim", "--path", "100mbit/10xs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o).trim_end(),
        "error: invalid path spec \"100mbit/10xs\": bad delay \"10xs\" (expected e.g. 10ms, 1s, 500us)"
    );
}

#[test]
fn unknown_path_option_lists_the_known_ones() {
    let o = braid(&[
        "sim",
        "--path",
        "100mbit/10ms",
        "--path",
        "100mbit/10ms/lost=1%",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o).trim_end(),
        "error: unknown path option \"lost\" in \"100mbit/10ms/lost=1%\" (known: loss, queue, down, up, gone, back, backup, reorder, dup, mtu, strip, link)"
    );
}

#[test]
fn other_bad_values_are_usage_errors() {
    for (args, needle) in [
        (
            &["sim", "--path", "100mbit/10ms/loss=101%"][..],
            "outside 0..100%",
        ),
        (&["sim", "--path", "0gbit/1ms"][..], "must be positive"),
        (
            &["sim", "--bytes", "lots"][..],
            "--bytes: bad size \"lots\"",
        ),
        (
            &["sim", "--time-limit", "1h"][..],
            "--time-limit: bad time \"1h\"",
        ),
        (&["sim", "--cc", "bbr"][..], "invalid value 'bbr'"),
        (&["sim", "--frobnicate"][..], "unexpected argument"),
        (
            &["sim", "--path", "100mbit/10ms/strip=bogus"][..],
            "strip: bad value \"bogus\" (known: syn, all)",
        ),
        (
            &["sim", "--scheduler", "fastest"][..],
            "invalid value 'fastest'",
        ),
        (&[][..], "Usage"),
    ] {
        let o = braid(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?} wrote to stdout");
    }
}

#[test]
fn help_documents_the_spec_syntax() {
    let o = braid(&["sim", "--help"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "--path <SPEC>",
        "RATE/DELAY",
        "--bytes <SIZE>",
        "--json",
        "KiB",
        "--scheduler <SCHEDULER>",
        "--checksum",
        "strip=syn|all",
        "/gone=TIME",
        "/backup",
        "/down=2s/up=4s/down=6s/up=7s",
    ] {
        assert!(out.contains(needle), "help lacks {needle}");
    }
}

#[test]
fn json_run_prints_one_parsable_object() {
    let o = braid(&[
        "sim",
        "--mode",
        "tcp",
        "--path",
        "50mbit/5ms/loss=0.5%",
        "--bytes",
        "1MiB",
        "--seed",
        "3",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["mode"], "tcp");
    assert_eq!(v["fallback"], false);
    assert!(v["max_stall_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["links"][0]["mptcp_stripped"], 0);
    assert_eq!(v["bytes"], 1 << 20);
    assert_eq!(v["intact"], true);
    assert_eq!(v["completed"], true);
    assert_eq!(v["seed"], 3);
    assert!(v["sim_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["wall_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["goodput_mbps"].as_f64().unwrap() > 0.0);
    let sf = &v["subflows"][0];
    assert_eq!(sf["path"], 0);
    assert!(sf["bytes_sent"].as_u64().unwrap() >= 1 << 20);
    assert!(sf["retransmitted_bytes"].is_u64());
    assert!(sf["srtt_ms"].as_f64().unwrap() >= 10.0);
    assert_eq!(v["links"].as_array().unwrap().len(), 2);
    assert_eq!(v["links"][0]["direction"], "client_to_server");
    assert_eq!(v["trace_sha256"].as_str().unwrap().len(), 64);
    assert!(v["counters"]["client"]["PacketsOut"].as_u64().unwrap() > 0);

    // One seed, one run.
    let again = braid(&[
        "sim",
        "--mode",
        "tcp",
        "--path",
        "50mbit/5ms/loss=0.5%",
        "--bytes",
        "1MiB",
        "--seed",
        "3",
        "--json",
    ]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["trace_sha256"], w["trace_sha256"]);
}

#[test]
fn human_summary_and_failure_exit_status() {
    let o = braid(&["sim", "--mode", "tcp", "--bytes", "1MiB", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "braid sim: tcp, 1 path",
        "path 0: 100mbit/10ms",
        "intact: yes",
        "goodput",
        "simulation speed",
        "max stall:",
        "subflow on path 0",
    ] {
        assert!(out.contains(needle), "summary lacks {needle}:\n{out}");
    }
    assert!(
        !out.contains("fallback"),
        "tcp mode has no fallback line:\n{out}"
    );
    let o = braid(&["sim", "--bytes", "64MiB", "--time-limit", "1s", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("stopped by --time-limit 1s"));
}

#[test]
fn mptcp_is_the_default_over_two_paths() {
    let o = braid(&["sim", "--bytes", "1MiB", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "braid sim: mptcp, 2 paths",
        "path 0: 100mbit/10ms",
        "path 1: 50mbit/20ms",
        "intact: yes",
        "fallback:  ",
        "max stall:",
        "subflow on path 0",
    ] {
        assert!(out.contains(needle), "summary lacks {needle}:\n{out}");
    }
}

#[test]
fn stripping_middlebox_is_reported() {
    let o = braid(&[
        "sim",
        "--path",
        "20mbit/5ms/strip=all",
        "--bytes",
        "256KiB",
        "--scheduler",
        "roundrobin",
        "--checksum",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["mode"], "mptcp");
    assert_eq!(v["intact"], true);
    // Whatever the engine offered, nothing MPTCP crossed the middlebox: plain TCP.
    assert_eq!(v["fallback"], true);
    assert!(v["links"][0]["mptcp_stripped"].as_u64().unwrap() >= 1);
    assert_eq!(v["subflows"].as_array().unwrap().len(), 1);
}

#[test]
fn sim_pcap_captures_every_packet_sent() {
    let dir = std::env::temp_dir().join(format!("braid-cli-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sim.pcap");
    let o = braid(&[
        "sim",
        "--bytes",
        "1MiB",
        "--json",
        "--quiet",
        "--pcap",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let offered: u64 = report["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["packets_offered"].as_u64().unwrap())
        .sum();
    let pcap = std::fs::read(&file).unwrap();
    // Classic pcap, microseconds, LINKTYPE_RAW; then one record per packet offered.
    assert_eq!(&pcap[..4], &0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(&pcap[20..24], &101u32.to_le_bytes());
    let (mut at, mut records, mut last_ts) = (24, 0u64, 0u64);
    while at + 16 <= pcap.len() {
        let word = |i: usize| u32::from_le_bytes(pcap[at + i..at + i + 4].try_into().unwrap());
        let ts = u64::from(word(0)) * 1_000_000 + u64::from(word(4));
        assert!(ts >= last_ts, "time goes forward");
        last_ts = ts;
        let len = word(8) as usize;
        assert_eq!(pcap[at + 16] >> 4, 4, "an IPv4 packet");
        at += 16 + len;
        records += 1;
    }
    assert_eq!(at, pcap.len());
    assert_eq!(records, offered);
    std::fs::remove_dir_all(&dir).unwrap();

    let o = braid(&[
        "sim",
        "--bytes",
        "1MiB",
        "--pcap",
        "/nonexistent-dir/x.pcap",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot create pcap file \"/nonexistent-dir/x.pcap\""),
        "{}",
        stderr(&o)
    );
}

/// Every registered congestion controller, scheduler and path manager runs a transfer intact
/// (the list comes from the engine's registries, as `--help` does); unknown names are refused
/// with the known ones.
#[test]
fn every_registered_policy_runs_and_unknown_names_list_the_known() {
    let run = |opt: &str, name: &str| {
        let o = braid(&[
            "sim",
            "--json",
            "--quiet",
            "--bytes",
            "2MiB",
            "--path",
            "20mbit/5ms",
            "--path",
            "10mbit/20ms",
            opt,
            name,
        ]);
        assert_eq!(o.status.code(), Some(0), "{opt} {name}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
        assert_eq!(v["intact"], true, "{opt} {name}");
        v
    };
    for cc in braid_proto::cc::names() {
        run("--cc", cc);
    }
    for s in braid_proto::mptcp::sched::names() {
        run("--scheduler", s);
    }
    for pm in braid_proto::mptcp::pm::names() {
        let pm = pm.replace("=N", "=3");
        let v = run("--path-manager", &pm);
        let subflows = v["subflows"].as_array().map_or(0, |a| a.len());
        let want = match pm.as_str() {
            "ndiffports=3" => 3,
            "fullmesh" => 2,
            _ => 1,
        };
        assert_eq!(subflows, want, "--path-manager {pm}: {v}");
    }
    for (opt, bad, known) in [
        ("--cc", "vegas", "reno, cubic, lia, olia, balia"),
        ("--scheduler", "blest", "minrtt, roundrobin, redundant"),
        (
            "--path-manager",
            "mesh",
            "fullmesh, ndiffports=N, signal, none",
        ),
    ] {
        let o = braid(&["sim", opt, bad]);
        assert_eq!(o.status.code(), Some(2));
        assert!(
            stderr(&o).contains(&format!("(known: {known})")),
            "{opt} {bad}: {}",
            stderr(&o)
        );
    }
    let h = String::from_utf8_lossy(&braid(&["sim", "--help"]).stdout).into_owned();
    assert!(h.contains("reno, cubic, lia, olia, balia"), "{h}");
    assert!(h.contains("fullmesh, ndiffports=N, signal, none"), "{h}");
}

#[test]
fn tcp_mode_refuses_more_than_one_path() {
    let o = braid(&[
        "sim",
        "--mode",
        "tcp",
        "--path",
        "100mbit/10ms",
        "--path",
        "50mbit/20ms",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    assert_eq!(
        stderr(&o).trim_end(),
        "error: --mode tcp uses one path, but 2 were given (plain TCP cannot use more; use --mode mptcp for several paths)"
    );
}

#[test]
fn sizes_are_case_insensitive() {
    let o = braid(&["sim", "--bytes", "256kib", "--json", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bytes"], 256 << 10);
    assert_eq!(v["intact"], true);
}

/// A run the time limit cuts short says so in the option's own words, with exact byte counts
/// (no rounding to "64.00 MiB of 64.00 MiB") and the goodput of what was delivered.
#[test]
fn incomplete_run_reports_exact_bytes_goodput_and_the_time_limit() {
    let o = braid(&["sim", "--bytes", "64MiB", "--time-limit", "1s", "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out
        .lines()
        .find(|l| l.starts_with("intact: NO (incomplete: "))
        .unwrap_or_else(|| panic!("no incomplete line:\n{out}"));
    assert!(
        line.contains("stopped by --time-limit 1s (simulated time)"),
        "{line}"
    );
    // "N of 67108864 bytes read, M missing" with N + M = 67108864.
    let tail = line.split("; ").nth(1).unwrap();
    let words: Vec<&str> = tail.split(' ').collect();
    let read: u64 = words[0].parse().unwrap();
    assert_eq!(words[1..4], ["of", "67108864", "bytes"]);
    let missing: u64 = words[5].parse().unwrap();
    assert!(read > 0 && missing > 0, "{line}");
    assert_eq!(read + missing, 64 << 20, "{line}");
    let goodput = out
        .lines()
        .find(|l| l.starts_with("sim time:"))
        .and_then(|l| l.split("goodput ").nth(1))
        .and_then(|g| g.split(' ').next())
        .and_then(|g| g.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no goodput:\n{out}"));
    let want = read as f64 * 8.0 / 1e6; // over the 1 s the run took
    assert!(
        (goodput - want).abs() < 0.01,
        "goodput {goodput}, want {want}"
    );

    let o = braid(&["sim", "--bytes", "64MiB", "--time-limit", "1s", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["completed"], false);
    assert_eq!(v["bytes_received"], read);
    assert!((v["goodput_mbps"].as_f64().unwrap() - want).abs() < 0.01);
}

/// The requested size is shown exactly when its rounded form would hide bytes.
#[test]
fn sizes_that_do_not_round_are_shown_exactly() {
    let o = braid(&["sim", "--bytes", "1000001", "--quiet"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("braid sim: mptcp, 2 paths, 976.56 KiB (1000001 bytes), seed 1"),
        "{out}"
    );
}

/// A control socket that answers like a running braid (for the CLI side of `path` and
/// `monitor`): the requests it got, and fixed answers.
mod fake {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::path::PathBuf;
    use std::sync::mpsc::{channel, Receiver};

    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    pub fn serve(answers: Vec<String>) -> (PathBuf, Receiver<String>) {
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("braid-cli-fake-{}-{n}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("c.sock");
        let _ = std::fs::remove_file(&path);
        let l = UnixListener::bind(&path).unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut out = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            tx.send(line).unwrap();
            for a in answers {
                writeln!(out, "{a}").unwrap();
            }
        });
        (path, rx)
    }
}

#[test]
fn path_sends_the_request_and_reports_the_answer() {
    let (sock, got) = fake::serve(vec![
        r#"{"id":1,"ok":true,"result":{"tun":"bt2","local":"10.77.3.1","backup":true}}"#.into(),
    ]);
    let s = sock.to_str().unwrap();
    let o = braid(&[
        "path",
        "add",
        "tun=bt2,local=10.77.3.1,peer=10.77.3.2/24,backup",
        "--control",
        s,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let req: serde_json::Value = serde_json::from_str(&got.recv().unwrap()).unwrap();
    assert_eq!(req["cmd"], "path");
    assert_eq!(req["op"], "add");
    assert_eq!(
        req["spec"],
        "tun=bt2,local=10.77.3.1,peer=10.77.3.2/24,backup"
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim_end(),
        "added path bt2 (local 10.77.3.1, backup)"
    );
    // The braid's refusal is shown as it said it, exit 1.
    let (sock, got) = fake::serve(vec![
        r#"{"id":1,"ok":false,"error":"no path on device \"bt9\" (paths: bt0, bt1)"}"#.into(),
    ]);
    let o = braid(&[
        "path",
        "set",
        "bt9",
        "backup",
        "--control",
        sock.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let req: serde_json::Value = serde_json::from_str(&got.recv().unwrap()).unwrap();
    assert_eq!(
        (req["op"].as_str(), req["name"].as_str()),
        (Some("set"), Some("bt9"))
    );
    assert_eq!(req["backup"], true);
    assert_eq!(
        stderr(&o).trim_end(),
        "braid path: no path on device \"bt9\" (paths: bt0, bt1)"
    );
}

#[test]
fn path_usage_errors_name_what_is_wrong() {
    let o = braid(&[
        "path",
        "add",
        "tun=bt2,local=10.77.3.1",
        "--control",
        "/nonexistent.sock",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("missing peer=IP/PREFIX"),
        "{}",
        stderr(&o)
    );
    let o = braid(&["path", "set", "bt1", "fast"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid value 'fast'"),
        "{}",
        stderr(&o)
    );
    let o = braid(&["path", "del", "bt1", "--control", "/nonexistent/braid.sock"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/braid.sock"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn monitor_prints_events_as_lines() {
    let ev = r#"{"event":"sub_closed","time":3723.5,"conn":2,"path":"bt1","local":"10.0.1.1:4000","remote":"10.0.0.2:80","reason":"peer removed address"}"#;
    let (sock, got) = fake::serve(vec![
        r#"{"id":1,"ok":true,"result":{"monitor":true}}"#.into(),
        ev.into(),
        r#"{"event":"lost","count":3}"#.into(),
    ]);
    let o = braid(&["monitor", "--control", sock.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let req: serde_json::Value = serde_json::from_str(&got.recv().unwrap()).unwrap();
    assert_eq!(req["cmd"], "monitor");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "01:02:03.500 sub_closed      conn 2 bt1 10.0.1.1:4000 -> 10.0.0.2:80 reason=peer removed address\n\
         - lost            count=3\n"
    );
    let (sock, _got) = fake::serve(vec![
        r#"{"id":1,"ok":true,"result":{"monitor":true}}"#.into(),
        ev.into(),
    ]);
    let o = braid(&["monitor", "--json", "--control", sock.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("{ev}\n"));
}

#[test]
fn path_and_monitor_help_say_what_they_do() {
    let h = String::from_utf8_lossy(&braid(&["path", "--help"]).stdout).into_owned();
    for needle in [
        "add",
        "del",
        "set",
        "--control",
        "NAME is the path's TUN device name",
        "REMOVE_ADDR",
        "MP_PRIO",
    ] {
        assert!(h.contains(needle), "path help lacks {needle}: {h}");
    }
    let h = String::from_utf8_lossy(&braid(&["monitor", "--help"]).stdout).into_owned();
    for needle in ["--json", "sub_closed", "local path gone", "loses events"] {
        assert!(h.contains(needle), "monitor help lacks {needle}: {h}");
    }
    let h = String::from_utf8_lossy(&braid(&["connect", "--help"]).stdout).into_owned();
    assert!(h.contains("[,backup]"), "{h}");
}
