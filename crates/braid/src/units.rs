//! Parsers for the command line's quantities: rates, times, sizes, percentages and path specs.
//!
//! * RATE: a number and `bit`, `kbit`, `mbit` or `gbit` (decimal: 1 kbit = 1000 bit/s), e.g.
//!   `100mbit`, `1.5gbit`.
//! * TIME / DELAY: a number and `us`, `ms` or `s`, e.g. `10ms`, `2s`, `500us`.
//! * SIZE: a number of bytes, optionally with a unit, in any case. Decimal units `k`/`kB`,
//!   `M`/`MB`, `G`/`GB`, `T`/`TB` multiply by 1000, 1000², 1000³, 1000⁴; binary units `KiB`,
//!   `MiB`, `GiB`, `TiB` by 1024, 1024², 1024³, 1024⁴; `B` is bytes. E.g. `100000`, `64MiB`,
//!   `10mib`, `1.5GB`.
//! * PCT: a percentage in 0..100, with or without `%`, e.g. `1%`, `0.5`.
//! * SPEC: `RATE/DELAY[/loss=PCT][/queue=SIZE][/down=TIME][/up=TIME]...[/gone=TIME][/back=TIME][/backup][/reorder=PCT][/dup=PCT][/mtu=N][/strip=syn|all]`;
//!   `strip` puts a middlebox on the path that removes MPTCP options from SYNs or every packet.

use braid_io::quantity;
use braid_sim::{PathSpec, Strip};
use std::time::Duration;

/// The options a path spec understands, for error messages.
const PATH_OPTIONS: &str =
    "loss, queue, down, up, gone, back, backup, reorder, dup, mtu, strip, link";

/// RATE in bits per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let bps = quantity::rate_bps(s.trim())
        .ok_or_else(|| format!("bad rate \"{s}\" (expected e.g. 100mbit, 1gbit, 500kbit)"))?;
    if bps < 1.0 {
        return Err(format!("rate \"{s}\" must be positive"));
    }
    if bps > 1e15 {
        return Err(format!("rate \"{s}\" is too large (at most 1000000gbit)"));
    }
    Ok(bps as u64)
}

/// TIME (and DELAY) as a duration.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let secs = quantity::seconds(s.trim())
        .ok_or_else(|| format!("bad time \"{s}\" (expected e.g. 10ms, 1s, 500us)"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= Duration::from_secs(1_000_000_000))
        .ok_or_else(|| format!("time \"{s}\" is too large"))
}

/// SIZE in bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = quantity::bytes(s.trim())
        .ok_or_else(|| format!("bad size \"{s}\" (expected e.g. 100000, 64MiB, 1GiB, 10MB)"))?;
    if bytes > 2f64.powi(62) {
        return Err(format!("size \"{s}\" is too large"));
    }
    Ok(bytes as u64)
}

/// PCT as a probability in [0, 1].
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v = quantity::percent(s.trim())
        .ok_or_else(|| format!("bad percentage \"{s}\" (expected e.g. 1%, 0.5%)"))?;
    if v > 100.0 {
        return Err(format!("percentage \"{s}\" outside 0..100%"));
    }
    Ok(v / 100.0)
}

/// A path SPEC (see the module documentation).
pub fn parse_path(spec: &str) -> Result<PathSpec, String> {
    let wrap = |e: String| format!("invalid path spec \"{spec}\": {e}");
    let mut parts = spec.split('/');
    let rate = parts.next().unwrap_or("");
    let Some(delay) = parts.next() else {
        return Err(wrap(
            "expected RATE/DELAY[/option=value]..., e.g. 100mbit/10ms".into(),
        ));
    };
    let rate = parse_rate(rate).map_err(wrap)?;
    let delay = parse_time(delay).map_err(|_| {
        wrap(format!(
            "bad delay \"{delay}\" (expected e.g. 10ms, 1s, 500us)"
        ))
    })?;
    let mut p = PathSpec::new(rate, delay);
    for opt in parts {
        if opt == "backup" {
            p.backup = true;
            continue;
        }
        let Some((key, value)) = opt.split_once('=') else {
            return Err(format!(
                "invalid path spec \"{spec}\": expected option=value, got \"{opt}\" (known: {PATH_OPTIONS})"
            ));
        };
        let in_key = |e: String| wrap(format!("{key}: {e}"));
        match key {
            "loss" => p.loss = parse_percent(value).map_err(in_key)?,
            "reorder" => p.reorder = parse_percent(value).map_err(in_key)?,
            "dup" => p.duplicate = parse_percent(value).map_err(in_key)?,
            "queue" => p.queue_bytes = Some(parse_size(value).map_err(in_key)?),
            // down= and up= may repeat: /down=2s/up=4s/down=6s/up=7s, in time order.
            "down" => {
                let t = parse_time(value).map_err(in_key)?;
                let last_up = p.later_outages.last().map_or(p.up_at, |o| o.1);
                match (p.down_at, last_up) {
                    (None, _) => p.down_at = Some(t),
                    (Some(_), None) => {
                        return Err(wrap(format!(
                            "down={} follows a down= without its up=",
                            fmt_duration(t)
                        )))
                    }
                    (Some(_), Some(u)) if t <= u => {
                        return Err(wrap(format!(
                            "down={} is not after up={}",
                            fmt_duration(t),
                            fmt_duration(u)
                        )))
                    }
                    (Some(_), Some(_)) => p.later_outages.push((t, None)),
                }
            }
            "up" => {
                let t = parse_time(value).map_err(in_key)?;
                match p.later_outages.last_mut() {
                    Some(o) if o.1.is_none() => {
                        if t <= o.0 {
                            return Err(wrap(format!(
                                "up={} is not after down={}",
                                fmt_duration(t),
                                fmt_duration(o.0)
                            )));
                        }
                        o.1 = Some(t);
                    }
                    Some(_) => return Err(wrap("up= given twice after one down=".into())),
                    None if p.up_at.is_some() => {
                        return Err(wrap("up= given twice after one down=".into()))
                    }
                    None => p.up_at = Some(t),
                }
            }
            "gone" => p.gone_at = Some(parse_time(value).map_err(in_key)?),
            "back" => p.back_at = Some(parse_time(value).map_err(in_key)?),
            "mtu" => {
                p.mtu = value
                    .parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| in_key(format!("bad mtu \"{value}\" (expected 68..65535)")))?
            }
            "link" => {
                p.link = Some(value.parse::<usize>().map_err(|_| {
                    in_key(format!("bad path number \"{value}\" (expected 0, 1, ...)"))
                })?)
            }
            "strip" => {
                p.strip = match value {
                    "syn" => Strip::Syn,
                    "all" => Strip::All,
                    _ => return Err(in_key(format!("bad value \"{value}\" (known: syn, all)"))),
                }
            }
            _ => {
                return Err(format!(
                    "unknown path option \"{key}\" in \"{spec}\" (known: {PATH_OPTIONS})"
                ))
            }
        }
    }
    match (p.down_at, p.up_at) {
        (None, Some(_)) => return Err(wrap("up= given without down=".into())),
        (Some(d), Some(u)) if u <= d => {
            return Err(wrap(format!(
                "up={} is not after down={}",
                fmt_duration(u),
                fmt_duration(d)
            )))
        }
        _ => {}
    }
    match (p.gone_at, p.back_at) {
        (None, Some(_)) => return Err(wrap("back= given without gone=".into())),
        (Some(g), Some(b)) if b <= g => {
            return Err(wrap(format!(
                "back={} is not after gone={}",
                fmt_duration(b),
                fmt_duration(g)
            )))
        }
        _ => {}
    }
    Ok(p)
}

/// True when `unit` divides `n` (spelled out: `is_multiple_of` is newer than our MSRV).
fn divides(unit: u128, n: u128) -> bool {
    n / unit * unit == n
}

/// A duration the way a user would write it (`10ms`, `2s`, `500us`).
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if divides(1_000_000_000, ns) {
        format!("{}s", ns / 1_000_000_000)
    } else if divides(1_000_000, ns) {
        format!("{}ms", ns / 1_000_000)
    } else if divides(1_000, ns) {
        format!("{}us", ns / 1_000)
    } else {
        format!("{}us", ns as f64 / 1e3)
    }
}

/// A rate the way a user would write it.
pub fn fmt_rate(bps: u64) -> String {
    if divides(1_000_000_000, u128::from(bps)) {
        format!("{}gbit", bps / 1_000_000_000)
    } else if divides(1_000_000, u128::from(bps)) {
        format!("{}mbit", bps / 1_000_000)
    } else if divides(1000, u128::from(bps)) {
        format!("{}kbit", bps / 1000)
    } else {
        format!("{bps}bit")
    }
}

/// A byte count with a binary unit, for humans.
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.2} {unit}")
}

/// A byte count for humans that never hides bytes: the rounded form, followed by the exact count
/// when the rounding lost some (`2.00 GiB (2148532224 bytes)`).
pub fn fmt_bytes_exact(b: u64) -> String {
    let short = fmt_bytes(b);
    let mut unit = 1u64;
    while unit < (1 << 40) && b >= unit * 1024 {
        unit *= 1024;
    }
    let hundredths = (b as f64 / unit as f64 * 100.0).round();
    if hundredths / 100.0 * unit as f64 == b as f64 {
        short
    } else {
        format!("{short} ({b} bytes)")
    }
}

/// A path spec written back in the command line's syntax.
pub fn fmt_path(p: &PathSpec) -> String {
    let mut s = format!("{}/{}", fmt_rate(p.rate_bps), fmt_duration(p.delay));
    let pct = |v: f64| format!("{}%", (v * 100.0 * 1e6).round() / 1e6);
    if p.loss > 0.0 {
        s += &format!("/loss={}", pct(p.loss));
    }
    if let Some(q) = p.queue_bytes {
        s += &format!("/queue={q}");
    }
    if let Some(d) = p.down_at {
        s += &format!("/down={}", fmt_duration(d));
    }
    if let Some(u) = p.up_at {
        s += &format!("/up={}", fmt_duration(u));
    }
    for &(d, u) in &p.later_outages {
        s += &format!("/down={}", fmt_duration(d));
        if let Some(u) = u {
            s += &format!("/up={}", fmt_duration(u));
        }
    }
    if let Some(g) = p.gone_at {
        s += &format!("/gone={}", fmt_duration(g));
    }
    if let Some(b) = p.back_at {
        s += &format!("/back={}", fmt_duration(b));
    }
    if p.backup {
        s += "/backup";
    }
    if p.reorder > 0.0 {
        s += &format!("/reorder={}", pct(p.reorder));
    }
    if p.duplicate > 0.0 {
        s += &format!("/dup={}", pct(p.duplicate));
    }
    if p.mtu != 1500 {
        s += &format!("/mtu={}", p.mtu);
    }
    match p.strip {
        Strip::None => {}
        Strip::Syn => s += "/strip=syn",
        Strip::All => s += "/strip=all",
    }
    if let Some(k) = p.link {
        s += &format!("/link={k}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100mbit"), Ok(100_000_000));
        assert_eq!(parse_rate("1gbit"), Ok(1_000_000_000));
        assert_eq!(parse_rate("10Gbit"), Ok(10_000_000_000));
        assert_eq!(parse_rate("500kbit"), Ok(500_000));
        assert_eq!(parse_rate("1.5mbit"), Ok(1_500_000));
        assert_eq!(parse_rate("9600bit"), Ok(9600));
        for bad in [
            "100",
            "mbit",
            "100mb",
            "100 mbit",
            "-1mbit",
            "1.2.3mbit",
            "",
        ] {
            let e = parse_rate(bad).unwrap_err();
            assert!(e.contains("bad rate"), "{bad}: {e}");
        }
        assert!(parse_rate("0mbit")
            .unwrap_err()
            .contains("must be positive"));
        assert!(parse_rate("0.0001bit")
            .unwrap_err()
            .contains("must be positive"));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_time("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_time("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_time("0.5ms"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_time("0ms"), Ok(Duration::ZERO));
        for bad in ["10", "10xs", "ms", "10 ms", "-5ms", "1m", "10MS"] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.contains("expected e.g. 10ms"), "{bad}: {e}");
        }
        assert!(parse_time("9999999999999s")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100000"), Ok(100_000));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("10k"), Ok(10_000));
        assert_eq!(parse_size("10K"), Ok(10_000));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("3M"), Ok(3_000_000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert_eq!(parse_size("64mib"), Ok(64 << 20));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("1GIB"), Ok(1 << 30));
        assert_eq!(parse_size("10mb"), Ok(10_000_000));
        for bad in ["", "MiB", "64 MiB", "64Mi", "12x", "-1", "1e6", "10mbit"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains("bad size"), "{bad}: {e}");
        }
        assert!(parse_size("99999999999GiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("1%"), Ok(0.01));
        assert_eq!(parse_percent("0.5%"), Ok(0.005));
        assert_eq!(parse_percent("2"), Ok(0.02));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        assert_eq!(parse_percent("0%"), Ok(0.0));
        assert!(parse_percent("150%")
            .unwrap_err()
            .contains("outside 0..100%"));
        assert!(parse_percent("-1%").unwrap_err().contains("bad percentage"));
        assert!(parse_percent("%").unwrap_err().contains("bad percentage"));
        assert!(parse_percent("abc").unwrap_err().contains("bad percentage"));
    }

    #[test]
    fn path_specs() {
        let p = parse_path("100mbit/10ms").unwrap();
        assert_eq!(p, PathSpec::new(100_000_000, Duration::from_millis(10)));

        let p = parse_path(
            "20mbit/40ms/loss=1%/queue=64KiB/down=2s/up=2500ms/reorder=0.5%/dup=2%/mtu=1280/strip=syn",
        )
        .unwrap();
        assert_eq!(p.rate_bps, 20_000_000);
        assert_eq!(p.delay, Duration::from_millis(40));
        assert_eq!(p.loss, 0.01);
        assert_eq!(p.queue_bytes, Some(65536));
        assert_eq!(p.down_at, Some(Duration::from_secs(2)));
        assert_eq!(p.up_at, Some(Duration::from_millis(2500)));
        assert_eq!(p.reorder, 0.005);
        assert_eq!(p.duplicate, 0.02);
        assert_eq!(p.mtu, 1280);
        assert_eq!(p.strip, Strip::Syn);
        assert_eq!(parse_path(&fmt_path(&p)), Ok(p));
        let p = parse_path("1mbit/1ms/strip=all").unwrap();
        assert_eq!(p.strip, Strip::All);
        assert_eq!(fmt_path(&p), "1mbit/1ms/strip=all");

        let p = parse_path("100mbit/5ms/down=2s").unwrap();
        assert_eq!((p.down_at, p.up_at), (Some(Duration::from_secs(2)), None));
    }

    #[test]
    fn repeated_outages_gone_back_and_backup_parse_and_print_back() {
        let spec = "100mbit/10ms/down=2s/up=4s/down=6s/up=7s/down=9s/gone=1s/back=3s/backup";
        let p = parse_path(spec).unwrap();
        assert_eq!(
            (p.down_at, p.up_at),
            (Some(Duration::from_secs(2)), Some(Duration::from_secs(4)))
        );
        assert_eq!(
            p.later_outages,
            vec![
                (Duration::from_secs(6), Some(Duration::from_secs(7))),
                (Duration::from_secs(9), None)
            ]
        );
        assert_eq!(
            (p.gone_at, p.back_at, p.backup),
            (
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(3)),
                true
            )
        );
        assert_eq!(parse_path(&fmt_path(&p)).unwrap(), p);
    }

    #[test]
    fn bad_path_specs_name_the_bad_part() {
        let cases: &[(&str, &str)] = &[
            (
                "100mbit/10xs",
                "invalid path spec \"100mbit/10xs\": bad delay \"10xs\" (expected e.g. 10ms, 1s, 500us)",
            ),
            (
                "100mbit/10ms/lost=1%",
                "unknown path option \"lost\" in \"100mbit/10ms/lost=1%\" (known: loss, queue, down, up, gone, back, backup, reorder, dup, mtu, strip, link)",
            ),
            (
                "100mbps/10ms",
                "invalid path spec \"100mbps/10ms\": bad rate \"100mbps\" (expected e.g. 100mbit, 1gbit, 500kbit)",
            ),
            (
                "0mbit/10ms",
                "invalid path spec \"0mbit/10ms\": rate \"0mbit\" must be positive",
            ),
            (
                "100mbit/10ms/loss=150%",
                "invalid path spec \"100mbit/10ms/loss=150%\": loss: percentage \"150%\" outside 0..100%",
            ),
            ("100mbit", "invalid path spec \"100mbit\": expected RATE/DELAY"),
            ("", "invalid path spec \"\": expected RATE/DELAY"),
            ("100mbit/10ms/loss", "expected option=value, got \"loss\""),
            ("100mbit/10ms/", "expected option=value, got \"\""),
            ("100mbit/10ms/queue=lots", "queue: bad size \"lots\""),
            ("100mbit/10ms/down=soon", "down: bad time \"soon\""),
            ("100mbit/10ms/mtu=40", "mtu: bad mtu \"40\" (expected 68..65535)"),
            ("100mbit/10ms/mtu=x", "mtu: bad mtu \"x\""),
            ("100mbit/10ms/dup=x", "dup: bad percentage \"x\""),
            ("100mbit/10ms/reorder=101", "reorder: percentage \"101\" outside"),
            ("100mbit/10ms/up=1s", "up= given without down="),
            (
                "100mbit/10ms/strip=bogus",
                "invalid path spec \"100mbit/10ms/strip=bogus\": strip: bad value \"bogus\" (known: syn, all)",
            ),
            ("100mbit/10ms/down=2s/up=1s", "up=1s is not after down=2s"),
            ("100mbit/10ms/down=2s/up=4s/down=3s", "down=3s is not after up=4s"),
            ("100mbit/10ms/down=2s/down=3s", "follows a down= without its up="),
            ("100mbit/10ms/gone=2s/back=1s", "back=1s is not after gone=2s"),
            ("100mbit/10ms/back=1s", "back= given without gone="),
        ];
        for (spec, want) in cases {
            let e = parse_path(spec).unwrap_err();
            assert!(e.contains(want), "{spec}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_duration(Duration::from_millis(10)), "10ms");
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_micros(250)), "250us");
        assert_eq!(fmt_rate(100_000_000), "100mbit");
        assert_eq!(fmt_rate(10_000_000_000), "10gbit");
        assert_eq!(fmt_rate(1_500_000), "1500kbit");
        assert_eq!(fmt_bytes(64 << 20), "64.00 MiB");
        assert_eq!(fmt_bytes(1000), "1000 B");
        assert_eq!(fmt_bytes_exact(64 << 20), "64.00 MiB");
        assert_eq!(fmt_bytes_exact(1536), "1.50 KiB");
        assert_eq!(fmt_bytes_exact(1000), "1000 B");
        assert_eq!(fmt_bytes_exact(2049 << 20), "2.00 GiB (2148532224 bytes)");
        assert_eq!(
            fmt_bytes_exact((10 << 30) - 1224),
            "10.00 GiB (10737417016 bytes)"
        );
        assert_eq!(
            fmt_path(&parse_path("1gbit/1ms/loss=0.1%").unwrap()),
            "1gbit/1ms/loss=0.1%"
        );
    }
}
