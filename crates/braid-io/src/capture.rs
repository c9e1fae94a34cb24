//! Capture devices: a TUN device whose traffic braid terminates with a transparent endpoint
//! (`braid run`, `braid capture`). Two set-ups:
//!
//! * [`CaptureDev::in_netns`]: the device is moved into a fresh namespace and carries its
//!   default routes (IPv4 and IPv6): everything the namespace sends leaves through braid.
//! * [`CaptureDev::system`]: the device stays in braid's namespace; routes to the captured
//!   prefixes go into a routing table of their own, consulted by a policy rule for TCP only
//!   (`ip rule ... ipproto tcp lookup TABLE`), after rules that keep braid's own path addresses
//!   on the main table. No netfilter is needed. Rules, routes and the device are removed when
//!   the value is dropped.

use crate::netconf::{ip, TX_QUEUE_LEN};
use crate::tun::Tun;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kernel's addresses on a capture device (its side; braid answers for every address).
pub const KERNEL_V4: Ipv4Addr = Ipv4Addr::new(10, 253, 253, 2);
/// braid's own address on the device (where it answers DNS, for example).
pub const BRAID_V4: Ipv4Addr = Ipv4Addr::new(10, 253, 253, 1);
pub const KERNEL_V6: Ipv6Addr = Ipv6Addr::new(0xfdbd, 0xfd, 0, 0, 0, 0, 0, 2);
pub const BRAID_V6: Ipv6Addr = Ipv6Addr::new(0xfdbd, 0xfd, 0, 0, 0, 0, 0, 1);
/// MTU of a capture device.
pub const MTU: u32 = 1500;

/// An IP prefix to capture: `default` (IPv4 and IPv6), `A.B.C.D/N`, `X::/N` or a bare address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parses one `--route` argument; `default` stands for 0.0.0.0/0 and ::/0.
pub fn parse_prefix(s: &str) -> Result<Vec<Prefix>, String> {
    let bad = |why: &str| {
        format!(
            "bad prefix \"{s}\": {why} (expected default, A.B.C.D/N or X:Y::/N, e.g. 10.0.0.0/8)"
        )
    };
    if s == "default" {
        return Ok(vec![
            Prefix {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                len: 0,
            },
            Prefix {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                len: 0,
            },
        ]);
    }
    let (a, l) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| bad("not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match l {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| bad(&format!("prefix length must be 0..{max}")))?,
    };
    // The address must not have bits beyond the prefix (ip route refuses such routes).
    let host_bits = match addr {
        IpAddr::V4(v) => u32::from(v) as u128 & (u32::MAX as u128 >> len.min(32)),
        IpAddr::V6(v) => u128::from(v) & (u128::MAX.checked_shr(len as u32).unwrap_or(0)),
    };
    if len < max && host_bits != 0 {
        return Err(bad("host bits set beyond the prefix length"));
    }
    Ok(vec![Prefix { addr, len }])
}

/// A capture device and what was set up around it.
#[derive(Debug)]
pub struct CaptureDev {
    pub tun: Tun,
    /// `ip` commands that undo the set-up, run in reverse order on drop.
    undo: Vec<Vec<String>>,
    /// Rule preference of the "keeps the main table" rules, and the addresses they cover.
    keep: Option<(u32, Vec<IpAddr>)>,
}

fn fam(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

impl CaptureDev {
    /// Creates TUN `name`, moves it into namespace `ns` with the kernel addresses and the
    /// namespace's default routes through it.
    pub fn in_netns(name: &str, ns: &str) -> io::Result<CaptureDev> {
        let tun = Tun::open(name)?;
        let dev = tun.name().to_string();
        let (mtu, q) = (MTU.to_string(), TX_QUEUE_LEN.to_string());
        ip(&["link", "set", "dev", &dev, "mtu", &mtu, "txqueuelen", &q])?;
        ip(&["link", "set", "dev", &dev, "netns", ns])?;
        let v4 = format!("{KERNEL_V4}/30");
        let v6 = format!("{KERNEL_V6}/64");
        ip(&["-n", ns, "addr", "add", &v4, "dev", &dev])?;
        ip(&["-n", ns, "addr", "add", &v6, "dev", &dev, "nodad"])?;
        ip(&["-n", ns, "link", "set", "dev", &dev, "up"])?;
        ip(&["-n", ns, "-4", "route", "add", "default", "dev", &dev])?;
        ip(&["-n", ns, "-6", "route", "add", "default", "dev", &dev])?;
        Ok(CaptureDev {
            tun,
            undo: Vec::new(),
            keep: None,
        })
    }

    /// Creates TUN `name` in braid's namespace and routes TCP towards `prefixes` into it by
    /// policy routing (table `table`, rule preference `pref`); traffic to `exclude` (braid's
    /// path addresses) keeps the main table.
    pub fn system(
        name: &str,
        prefixes: &[Prefix],
        exclude: &[IpAddr],
        table: u32,
        pref: u32,
    ) -> io::Result<CaptureDev> {
        let tun = Tun::open(name)?;
        let dev = tun.name().to_string();
        let mut c = CaptureDev {
            tun,
            undo: Vec::new(),
            keep: Some((pref, Vec::new())),
        };
        let (mtu, q) = (MTU.to_string(), TX_QUEUE_LEN.to_string());
        ip(&["link", "set", "dev", &dev, "mtu", &mtu, "txqueuelen", &q])?;
        let v4 = format!("{KERNEL_V4}/30");
        let v6 = format!("{KERNEL_V6}/64");
        ip(&["addr", "add", &v4, "dev", &dev])?;
        ip(&["addr", "add", &v6, "dev", &dev, "nodad"])?;
        ip(&["link", "set", "dev", &dev, "up"])?;
        let t = table.to_string();
        for p in prefixes {
            let ps = p.to_string();
            ip(&[fam(p.addr), "route", "add", &ps, "dev", &dev, "table", &t])?;
        }
        let p_cap = (pref + 1).to_string();
        for &a in exclude {
            c.keep_main(a)?;
        }
        for f in ["-4", "-6"] {
            if prefixes.iter().any(|p| fam(p.addr) == f) {
                c.rule(&[
                    f, "rule", "add", "pref", &p_cap, "ipproto", "tcp", "lookup", &t,
                ])?;
            }
        }
        Ok(c)
    }

    /// Traffic to `addr` (a path of braid's, also one added at run time) keeps the main table
    /// and is never captured. Once per address; nothing to do for a namespace capture.
    pub fn keep_main(&mut self, addr: IpAddr) -> io::Result<()> {
        let Some((pref, done)) = &self.keep else {
            return Ok(());
        };
        if done.contains(&addr) {
            return Ok(());
        }
        let p = pref.to_string();
        let a = addr.to_string();
        self.rule(&[
            fam(addr),
            "rule",
            "add",
            "pref",
            &p,
            "to",
            &a,
            "lookup",
            "main",
        ])?;
        if let Some((_, done)) = &mut self.keep {
            done.push(addr);
        }
        Ok(())
    }

    /// Runs an `ip ... rule add ...` and remembers its `del` twin.
    fn rule(&mut self, args: &[&str]) -> io::Result<()> {
        ip(args)?;
        let undo = args
            .iter()
            .map(|a| if *a == "add" { "del" } else { a }.to_string())
            .collect();
        self.undo.push(undo);
        Ok(())
    }

    pub fn name(&self) -> &str {
        self.tun.name()
    }
}

impl Drop for CaptureDev {
    fn drop(&mut self) {
        for args in self.undo.iter().rev() {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = ip(&a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_bad_ones_are_named() {
        assert_eq!(parse_prefix("default").unwrap().len(), 2);
        assert_eq!(
            parse_prefix("10.0.0.0/8").unwrap(),
            vec![Prefix {
                addr: "10.0.0.0".parse().unwrap(),
                len: 8
            }]
        );
        assert_eq!(parse_prefix("10.1.2.3").unwrap()[0].len, 32);
        assert_eq!(parse_prefix("fd00::/8").unwrap()[0].len, 8);
        for bad in [
            "10.0.0.0/33",
            "10.0.0.1/8",
            "nonsense",
            "10.0.0.0/x",
            "fd00::/129",
            "",
        ] {
            let e = parse_prefix(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("bad prefix"), "{e}");
        }
    }
}
