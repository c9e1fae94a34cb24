//! Link and address configuration of the kernel side of a path, by running `ip` (iproute2):
//! far simpler than netlink and only done at start-up.

use crate::spec::PathSpec;
use std::io;
use std::process::Command;

/// Packets the kernel may queue on a device for braid to read.
pub const TX_QUEUE_LEN: u32 = 1000;

/// Runs `ip ARGS`; the error quotes the command and what `ip` printed.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running `ip {}`: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Sets the MTU, moves the device into the path's namespace (if any), gives the kernel side
/// `peer/prefix` (after bringing the link up). IPv6 addresses get `nodad`, usable at once.
pub fn configure(dev: &str, path: &PathSpec) -> io::Result<()> {
    let mtu = path.mtu.to_string();
    // The device's queue towards braid: a burst from the kernel beyond it is dropped before
    // braid reads it (Linux's default for Ethernet devices; TUN's own default is 500).
    let qlen = TX_QUEUE_LEN.to_string();
    ip(&["link", "set", "dev", dev, "mtu", &mtu, "txqueuelen", &qlen])?;
    let addr = format!("{}/{}", path.peer, path.prefix);
    let mut base: Vec<&str> = Vec::new();
    if let Some(ns) = &path.netns {
        // A device of that name in the namespace would make the move fail with "File exists";
        // say which device and where instead.
        let taken = Command::new("ip")
            .args(["-n", ns, "link", "show", "dev", dev])
            .output()
            .is_ok_and(|o| o.status.success());
        if taken {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "network device {dev} already exists in namespace {ns}: braid will not \
                     take it over (choose another tun=NAME, or remove it with \
                     `ip -n {ns} link del {dev}`)"
                ),
            ));
        }
        ip(&["link", "set", "dev", dev, "netns", ns])?;
        base.extend(["-n", ns.as_str()]);
    }
    // Up first, then the address: whoever sees the address (a route to add through the
    // device, say) finds the link up already.
    let mut up = base.clone();
    up.extend(["link", "set", "dev", dev, "up"]);
    ip(&up)?;
    let mut add = base;
    add.extend(["addr", "add", &addr, "dev", dev]);
    if path.peer.is_ipv6() {
        add.push("nodad");
    }
    ip(&add)
}

/// Gives the kernel side of a device that came back up its address again (`ip addr replace`:
/// an IPv6 address goes when the link goes down; an IPv4 one stays and is left as it is).
pub fn readdress(dev: &str, path: &PathSpec) -> io::Result<()> {
    let addr = format!("{}/{}", path.peer, path.prefix);
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = &path.netns {
        args.extend(["-n", ns.as_str()]);
    }
    args.extend(["addr", "replace", &addr, "dev", dev]);
    if path.peer.is_ipv6() {
        args.push("nodad");
    }
    ip(&args)
}
