//! A SYN flood from spoofed sources against `braid listen` (tests/interop/syn_flood.py, about
//! 3000 SYNs a second, half with MP_CAPABLE), while unmodified Linux MPTCP clients
//! (tests/interop/mptcp_peer.py) connect and send: every client is served intact over MPTCP,
//! braid answered the overflow with SYN cookies and rebuilt the clients' connections from them,
//! and braid's memory stays bounded. Root; a throw-away namespace.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

const PEER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/mptcp_peer.py"
);
const FLOOD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/interop/syn_flood.py"
);
const CLIENTS: usize = 8;
const BYTES: u64 = 256 << 10;

#[test]
fn linux_mptcp_clients_served_through_a_spoofed_syn_flood() {
    let _g = serial();
    let case = "linux_mptcp_clients_served_through_a_spoofed_syn_flood";
    if !can_run_with("interop test", case, &[("python3", "--version", "python3")]) {
        return;
    }
    let r = random_u64();
    let ns = Netns::mptcp_peer(format!("braid-fl-{:08x}", r as u32));
    let tun = format!("bf{:06x}", (r >> 32) as u32 & 0xff_ffff);
    let path = format!("tun={tun},local=10.85.1.1,peer=10.85.1.2/24,netns={}", ns.0);
    let count = CLIENTS.to_string();
    let mut braid = Proc::spawn(
        "braid listen",
        Command::new(env!("CARGO_BIN_EXE_braid")).args([
            "listen",
            "--path",
            &path,
            "--port",
            "7200",
            "--count",
            &count,
            "--json",
            "--timeout",
            "80s",
        ]),
    );
    // braid says "control socket ..." on stderr once its devices are up.
    let mut up = false;
    for _ in 0..200 {
        if braid.stderr().contains("control socket") {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "braid listen did not start: {}", braid.stderr());
    let rss_idle = rss_kib(braid.pid());
    let mut flood = Proc::spawn(
        "syn flood",
        Command::new("ip").args([
            "netns",
            "exec",
            &ns.0,
            "python3",
            FLOOD,
            "10.85.1.1",
            "7200",
            "--rate",
            "3000",
            "--seconds",
            "8",
        ]),
    );
    // Let the flood fill the half-open queue before the first client comes.
    std::thread::sleep(Duration::from_millis(1500));
    let rss_flood = rss_kib(braid.pid());
    let mut peers = Vec::new();
    let size = BYTES.to_string();
    for i in 0..CLIENTS {
        let mut c = Proc::spawn(
            &format!("Linux client {i}"),
            Command::new("ip").args([
                "netns",
                "exec",
                &ns.0,
                "python3",
                PEER,
                "client",
                "--connect",
                "10.85.1.1",
                "--port",
                "7200",
                "--send",
                &size,
            ]),
        );
        let (st, out) = c.finish(Duration::from_secs(40));
        assert!(st.success(), "client {i}: {st}; {}", c.stderr());
        let v: serde_json::Value =
            serde_json::from_str(out.lines().last().unwrap_or("")).expect("client JSON");
        assert_eq!(v["tx_bytes"], BYTES, "client {i}: {v}");
        assert_eq!(v["mptcp"], true, "client {i} fell back to TCP: {v}");
        peers.push(v);
    }
    let (fst, fout) = flood.finish(Duration::from_secs(30));
    assert!(fst.success(), "flood: {fst}; {}", flood.stderr());
    let sent: serde_json::Value = serde_json::from_str(fout.trim()).expect("flood JSON");
    assert!(
        sent["sent"].as_u64().unwrap_or(0) > 5000,
        "flood sent {sent}"
    );
    let (st, out) = braid.finish(Duration::from_secs(30));
    assert!(st.success(), "braid listen: {st}; {}", braid.stderr());
    let reports: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(reports.len(), CLIENTS, "braid's reports: {out}");
    let mut hashes: Vec<&str> = peers
        .iter()
        .filter_map(|p| p["tx_sha256"].as_str())
        .collect();
    let mut got: Vec<&str> = reports
        .iter()
        .filter_map(|r| r["sha256"].as_str())
        .collect();
    hashes.sort();
    got.sort();
    assert_eq!(
        got, hashes,
        "braid received other bytes than the clients sent"
    );
    for r in &reports {
        assert_eq!(r["bytes"], BYTES, "{r}");
        assert_eq!(r["mptcp"]["fallback"], false, "{r}");
    }
    let last = &reports[CLIENTS - 1]["counters"];
    let ctr = |n: &str| last[n].as_u64().unwrap_or(0);
    assert!(ctr("SyncookiesSent") > 1000, "counters: {last}");
    assert!(
        ctr("SyncookiesRecv") >= 1,
        "no client came through a cookie: {last}"
    );
    // Bounded: the flood's half-open connections are capped by the backlog; no growth per SYN.
    assert!(
        rss_flood > 0 && rss_flood < rss_idle + 64 * 1024,
        "braid's RSS grew from {rss_idle} KiB to {rss_flood} KiB under the flood"
    );
    eprintln!(
        "flood {sent}; braid RSS {rss_idle} KiB idle, {rss_flood} KiB under the flood; \
         SyncookiesSent {} SyncookiesRecv {} ListenOverflows {}",
        ctr("SyncookiesSent"),
        ctr("SyncookiesRecv"),
        ctr("ListenOverflows")
    );
}
