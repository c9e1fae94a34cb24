//! Path specifications for the TUN data plane:
//! `tun=NAME,local=IP,peer=IP/PREFIX[,netns=NS][,delay=TIME][,loss=PCT][,rate=RATE][,queue=SIZE][,mtu=N][,offload=on|off][,backup]`.
//!
//! * `tun`: name of the TUN device braid creates (at most 15 bytes).
//! * `local`: braid's own address on this path (the kernel never gets it).
//! * `peer`: the kernel's address on the device, with the prefix that routes `local` to it.
//! * `netns`: an existing network namespace the device is moved into before `peer` is configured.
//! * `delay`: one-way delay added in each direction (the round trip grows by twice it).
//! * `loss`: probability of dropping a packet, in each direction independently.
//! * `rate`: bottleneck rate of each direction (serialisation with a drop-tail queue).
//! * `queue`: that queue's size in bytes (default: one bandwidth-delay product, at least 64 KiB).
//! * `mtu`: the device's MTU (default 1500).
//! * `offload`: TUN checksum and segmentation offloads (default on; `off`: one write per packet,
//!   checksums in userspace; `BRAID_OFFLOAD=0` in the environment turns them off for all paths).
//! * `backup` (no value): a backup path: its subflows join with the MP_JOIN B bit and carry
//!   data only while no regular subflow works.

use crate::emu::EmuSpec;
use crate::quantity;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

/// The keys a path spec understands, for error messages.
pub const PATH_KEYS: &str =
    "tun, local, peer, netns, delay, loss, rate, queue, mtu, offload, backup";

/// One path of braid over a TUN device.
#[derive(Clone, Debug, PartialEq)]
pub struct PathSpec {
    /// TUN device name.
    pub tun: String,
    /// braid's address on the path.
    pub local: IpAddr,
    /// The kernel's address on the device.
    pub peer: IpAddr,
    /// Prefix length of `peer` (must cover `local`).
    pub prefix: u8,
    /// Namespace the device is moved to, if any.
    pub netns: Option<String>,
    pub mtu: u32,
    /// Emulated path properties.
    pub emu: EmuSpec,
    /// Use the TUN device's checksum and segmentation offloads where the kernel has them.
    pub offload: bool,
    /// A backup path (MP_JOIN with the B bit; no data while a regular subflow works).
    pub backup: bool,
}

impl PathSpec {
    /// Bytes of IP header for this path's family.
    pub fn ip_header_len(&self) -> u32 {
        if self.local.is_ipv4() {
            20
        } else {
            40
        }
    }

    /// The largest TCP payload that fits the MTU without options (the MSS to advertise).
    pub fn mss(&self) -> u16 {
        (self.mtu - self.ip_header_len() - 20).min(u16::MAX as u32) as u16
    }
}

impl FromStr for PathSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse(s)
    }
}

/// Parses a path spec; the error names the bad part.
pub fn parse(spec: &str) -> Result<PathSpec, String> {
    let wrap = |e: String| format!("invalid path \"{spec}\": {e}");
    let (mut tun, mut local, mut peer, mut netns) = (None, None, None, None);
    let mut emu = EmuSpec::default();
    let mut mtu = 1500u32;
    let mut offload = true;
    let mut backup = false;
    for part in spec.split(',') {
        if part == "backup" {
            backup = true;
            continue;
        }
        let Some((key, value)) = part.split_once('=') else {
            return Err(wrap(format!(
                "expected key=value, got \"{part}\" (known keys: {PATH_KEYS})"
            )));
        };
        let in_key = |e: String| wrap(format!("{key}: {e}"));
        match key {
            "tun" => tun = Some(parse_ifname(value).map_err(in_key)?),
            "local" => {
                local = Some(
                    value
                        .parse::<IpAddr>()
                        .map_err(|_| in_key(format!("bad address \"{value}\"")))?,
                )
            }
            "peer" => peer = Some(parse_prefixed(value).map_err(in_key)?),
            "netns" => netns = Some(parse_netns(value).map_err(in_key)?),
            "delay" => emu.delay = parse_time(value).map_err(in_key)?,
            "loss" => emu.loss = parse_percent(value).map_err(in_key)?,
            "rate" => emu.rate = Some(parse_rate(value).map_err(in_key)?),
            "queue" => emu.queue = Some(parse_size(value).map_err(in_key)?),
            "mtu" => {
                mtu = value
                    .parse::<u32>()
                    .ok()
                    .filter(|m| (1280..=65535).contains(m))
                    .ok_or_else(|| in_key(format!("bad mtu \"{value}\" (expected 1280..65535)")))?
            }
            "offload" => {
                offload = match value {
                    "on" | "yes" | "1" => true,
                    "off" | "no" | "0" => false,
                    _ => {
                        return Err(in_key(format!(
                            "bad value \"{value}\" (expected on or off)"
                        )))
                    }
                }
            }
            _ => {
                return Err(wrap(format!(
                    "unknown key \"{key}\" (known keys: {PATH_KEYS})"
                )))
            }
        }
    }
    let tun = tun.ok_or_else(|| wrap("missing tun=NAME".into()))?;
    let local = local.ok_or_else(|| wrap("missing local=IP".into()))?;
    let (peer, prefix) = peer.ok_or_else(|| wrap("missing peer=IP/PREFIX".into()))?;
    if local.is_ipv4() != peer.is_ipv4() {
        return Err(wrap(format!(
            "local {local} and peer {peer} are of different address families"
        )));
    }
    if local == peer {
        return Err(wrap(format!("local and peer are the same address {local}")));
    }
    if !same_prefix(local, peer, prefix) {
        return Err(wrap(format!(
            "local {local} is outside peer's prefix {peer}/{prefix}: the kernel would not route to it"
        )));
    }
    Ok(PathSpec {
        tun,
        local,
        peer,
        prefix,
        netns,
        mtu,
        emu,
        offload,
        backup,
    })
}

/// A Linux interface name: 1..=15 bytes, no '/', ':' or whitespace.
fn parse_ifname(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 15 {
        return Err(format!(
            "interface name \"{s}\" must have 1 to 15 characters"
        ));
    }
    if s == "." || s == ".." || s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!("bad interface name \"{s}\""));
    }
    Ok(s.to_string())
}

/// A namespace name as `ip netns` accepts it.
fn parse_netns(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.starts_with('-') {
        return Err(format!("bad namespace name \"{s}\""));
    }
    Ok(s.to_string())
}

/// `IP/PREFIX`.
fn parse_prefixed(s: &str) -> Result<(IpAddr, u8), String> {
    let bad =
        || format!("bad address \"{s}\" (expected IP/PREFIX, e.g. 10.0.0.2/24 or fd00::2/64)");
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("prefix /{len} is longer than {max}"));
    }
    Ok((ip, len))
}

fn same_prefix(a: IpAddr, b: IpAddr, len: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// TIME: a number and `us`, `ms` or `s`.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let secs = quantity::seconds(s)
        .ok_or_else(|| format!("bad time \"{s}\" (expected e.g. 10ms, 1s, 500us)"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= Duration::from_secs(3600))
        .ok_or_else(|| format!("time \"{s}\" is too large (at most 3600s)"))
}

/// RATE in bits per second: a number and `bit`, `kbit`, `mbit` or `gbit` (decimal).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let bps = quantity::rate_bps(s)
        .ok_or_else(|| format!("bad rate \"{s}\" (expected e.g. 100mbit, 1gbit, 500kbit)"))?;
    if bps < 1000.0 {
        return Err(format!("rate \"{s}\" is below 1kbit"));
    }
    if bps > 1e13 {
        return Err(format!("rate \"{s}\" is too large (at most 10000gbit)"));
    }
    Ok(bps as u64)
}

/// PCT: a probability given in percent, `1%` or `1`.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v = quantity::percent(s)
        .ok_or_else(|| format!("bad percentage \"{s}\" (expected e.g. 1%, 0.5%)"))?;
    if v > 100.0 {
        return Err(format!("percentage \"{s}\" outside 0..100%"));
    }
    Ok(v / 100.0)
}

/// SIZE in bytes: a number with an optional unit (`k`, `M`, `G` decimal; `KiB`, `MiB`, `GiB`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bytes = quantity::bytes(s)
        .ok_or_else(|| format!("bad size \"{s}\" (expected e.g. 100000, 64KiB, 1MiB)"))?;
    if bytes > 2f64.powi(40) {
        return Err(format!("size \"{s}\" is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_spec_parses() {
        let p = parse("tun=bt0,local=10.77.1.1,peer=10.77.1.2/24,netns=peer,delay=10ms,loss=1%,rate=100mbit,queue=64KiB,mtu=1400")
            .unwrap();
        assert_eq!(p.tun, "bt0");
        assert_eq!(p.local, "10.77.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(p.peer, "10.77.1.2".parse::<IpAddr>().unwrap());
        assert_eq!(p.prefix, 24);
        assert_eq!(p.netns.as_deref(), Some("peer"));
        assert_eq!(p.emu.delay, Duration::from_millis(10));
        assert!((p.emu.loss - 0.01).abs() < 1e-12);
        assert_eq!(p.emu.rate, Some(100_000_000));
        assert_eq!(p.emu.queue, Some(65536));
        assert_eq!(p.mtu, 1400);
        assert_eq!(p.mss(), 1360);
        assert!(p.offload);
        let off = parse("tun=bt0,local=10.77.1.1,peer=10.77.1.2/24,offload=off").unwrap();
        assert!(!off.offload);
        let e = parse("tun=bt0,local=10.77.1.1,peer=10.77.1.2/24,offload=maybe").unwrap_err();
        assert!(e.contains("offload") && e.contains("maybe"), "{e}");
        assert!(!p.backup);
        let b = parse("tun=bt1,local=10.77.2.1,peer=10.77.2.2/24,backup").unwrap();
        assert!(b.backup);
        let e = parse("tun=bt1,local=10.77.2.1,peer=10.77.2.2/24,backupp").unwrap_err();
        assert!(e.contains("backupp"), "{e}");
    }

    #[test]
    fn ipv6_spec_parses() {
        let p = parse("tun=bt6,local=fd00:77::1,peer=fd00:77::2/64").unwrap();
        assert!(p.local.is_ipv6());
        assert_eq!(p.prefix, 64);
        assert_eq!(p.netns, None);
        assert_eq!(p.emu, EmuSpec::default());
        assert_eq!(p.mss(), 1440);
    }

    #[test]
    fn errors_name_the_bad_part() {
        let cases = [
            ("tun=bt0,local=10.0.0.1", "missing peer=IP/PREFIX"),
            ("local=10.0.0.1,peer=10.0.0.2/24", "missing tun=NAME"),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/24,delay=10xs",
                "delay: bad time \"10xs\"",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/24,loss=101%",
                "loss: percentage \"101%\" outside",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/24,rate=fast",
                "rate: bad rate \"fast\"",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2",
                "peer: bad address \"10.0.0.2\"",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/33",
                "prefix /33 is longer than 32",
            ),
            (
                "tun=bt0,local=10.0.0.x,peer=10.0.0.2/24",
                "local: bad address \"10.0.0.x\"",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=fd00::2/64",
                "different address families",
            ),
            (
                "tun=bt0,local=10.0.1.1,peer=10.0.0.2/24",
                "outside peer's prefix",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/24,colour=red",
                "unknown key \"colour\"",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/24,netns",
                "expected key=value, got \"netns\"",
            ),
            (
                "tun=averyveryverylongname,local=10.0.0.1,peer=10.0.0.2/24",
                "1 to 15 characters",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/24,netns=a/b",
                "bad namespace name",
            ),
            (
                "tun=bt0,local=10.0.0.1,peer=10.0.0.2/24,mtu=100",
                "bad mtu \"100\"",
            ),
        ];
        for (spec, needle) in cases {
            let e = parse(spec).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(e.starts_with(&format!("invalid path \"{spec}\"")), "{e}");
        }
    }

    #[test]
    fn units() {
        assert_eq!(parse_time("500us").unwrap(), Duration::from_micros(500));
        assert_eq!(parse_time("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_rate("1.5gbit").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("10k").unwrap(), 10_000);
        assert!(parse_percent("-1").is_err());
        assert!(parse_time("ms").is_err());
        assert!(parse_rate("10bit").is_err());
    }

    #[test]
    fn prefix_edges() {
        assert!(parse("tun=a,local=10.0.0.1,peer=11.0.0.2/0").is_ok());
        assert!(parse("tun=a,local=10.0.0.1,peer=10.0.0.2/32").is_err());
        assert!(parse("tun=a,local=fd00::1,peer=fd00::2/127").is_err());
        assert!(parse("tun=a,local=fd00::1,peer=fd00::2/126").is_ok());
    }
}
