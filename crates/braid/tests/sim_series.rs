//! `braid sim` with shared links, competing flows, `--trace` and `--plot`, as a user runs it.

use std::process::{Command, Output};

fn braid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args(args)
        .output()
        .expect("run braid")
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("braid-sim-series-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const SHARED: [&str; 9] = [
    "sim",
    "--path",
    "100mbit/10ms",
    "--path",
    "100mbit/10ms/link=0",
    "--competing",
    "1",
    "--bytes",
    "8MiB",
];

#[test]
fn json_reports_the_competing_flows() {
    let o = braid(&[&SHARED[..], &["--json", "--quiet"]].concat());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = v["competing"].as_array().expect("competing list");
    assert_eq!(c.len(), 1);
    let bytes = c[0]["bytes"].as_u64().unwrap();
    let goodput = c[0]["goodput_mbps"].as_f64().unwrap();
    assert!(bytes > 0 && goodput > 0.0);
    let secs = v["sim_seconds"].as_f64().unwrap();
    assert!((bytes as f64 * 8.0 / secs / 1e6 - goodput).abs() < 1e-6);
    assert_eq!(
        v["links"].as_array().unwrap().len(),
        2,
        "one shared link pair"
    );
    // Without --competing the list is there and empty.
    let o = braid(&["sim", "--bytes", "1MiB", "--json", "--quiet"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["competing"], serde_json::json!([]));
    // The human report names them too.
    let o = braid(&[&SHARED[..], &["--quiet"]].concat());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("path 1: 100mbit/10ms/link=0"), "{text}");
    assert!(text.contains("competing TCP flow 0: "), "{text}");
}

#[test]
fn bad_links_are_usage_errors() {
    for (spec, needle) in [
        (
            &["--path", "100mbit/10ms/link=0"][..],
            "path 0: link=0: the first path has a link of its own",
        ),
        (
            &["--path", "100mbit/10ms", "--path", "100mbit/10ms/link=x"][..],
            "link: bad path number \"x\"",
        ),
        (
            &["--path", "100mbit/10ms", "--path", "10mbit/10ms/link=0"][..],
            "path 1: crosses path 0's link, so its rate and delay are path 0's",
        ),
        (
            &[
                "--path",
                "100mbit/10ms",
                "--path",
                "100mbit/10ms/link=0/loss=1%",
            ][..],
            "are properties of that link",
        ),
    ] {
        let o = braid(&[&["sim"][..], spec].concat());
        assert_eq!(o.status.code(), Some(2), "{spec:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{spec:?}: {err}");
    }
}

#[test]
fn trace_lines_parse_and_have_the_fields() {
    let path = tmp("trace.jsonl");
    let o = braid(&[&SHARED[..], &["--quiet", "--trace", path.to_str().unwrap()]].concat());
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(lines.len() > 50);
    let ticks = lines.iter().filter(|l| l["event"] == "tick").count();
    assert!(ticks > 40 && ticks < lines.len(), "ticks and events");
    assert_eq!(lines.last().unwrap()["event"], "end");
    for l in &lines {
        for key in ["t", "send_queue", "recv_queue", "bytes_read"] {
            assert!(l[key].is_number(), "{key} in {l}");
        }
        assert!(l["competing"].is_array());
        for sf in l["subflows"].as_array().unwrap() {
            for key in ["path", "cwnd", "inflight", "bytes_sent", "bytes_acked"] {
                assert!(sf[key].is_u64(), "{key} in {sf}");
            }
            assert!(sf["state"].is_string());
            assert!(sf["ssthresh"].is_u64() || sf["ssthresh"].is_null());
            assert!(sf["srtt_ms"].is_f64() || sf["srtt_ms"].is_null());
        }
    }
    let last = lines.last().unwrap();
    assert_eq!(last["subflows"].as_array().unwrap().len(), 2);
    assert_eq!(last["bytes_read"], 8 << 20);
}

#[test]
fn plot_writes_a_valid_svg() {
    let path = tmp("plot.svg");
    let o = braid(&[&SHARED[..], &["--quiet", "--plot", path.to_str().unwrap()]].concat());
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    assert!(root.attribute("width").is_some() && root.attribute("height").is_some());
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    for want in [
        "goodput",
        "congestion window",
        "smoothed RTT",
        "braid subflow 0 (path 0)",
        "braid subflow 1 (path 1)",
        "competing TCP 0",
    ] {
        assert!(texts.iter().any(|t| t == want), "no {want:?} in {texts:?}");
    }
    // Data lines: goodput (total, 2 subflows, 1 competing) + cwnd (3) + srtt (3), each with
    // many points.
    let long_lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split(' ').count() > 20)
        })
        .count();
    assert!(long_lines >= 10, "{long_lines} data lines");
    // A plot that cannot be written is an error, not silence.
    let o = braid(&[
        "sim",
        "--bytes",
        "1MiB",
        "--quiet",
        "--plot",
        "/nonexistent/dir/p.svg",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/dir/p.svg"));
}
