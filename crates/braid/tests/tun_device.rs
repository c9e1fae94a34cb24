//! braid creates its own TUN devices and never takes over one that exists (root: it makes
//! devices and namespaces; without root the cases skip and say so, in CI they fail).

mod common;
use common::*;
use std::process::Command;

fn braid_connect(path: &str, target: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_braid"))
        .args([
            "connect",
            "--path",
            path,
            target,
            "--bytes",
            "1KiB",
            "--timeout",
            "5s",
        ])
        .output()
        .expect("run braid")
}

/// `ip ARGS` output, or None when it fails.
fn ip_out(args: &[&str]) -> Option<String> {
    let o = Command::new("ip").args(args).output().ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A persistent TUN device in this namespace, removed on drop.
struct Device(String);

impl Drop for Device {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

#[test]
fn an_existing_tun_device_is_refused_and_left_as_found() {
    let _g = serial();
    if !root_or_skip("an_existing_tun_device_is_refused_and_left_as_found") {
        return;
    }
    let r = random_u64();
    let dev = Device(format!("bx{:06x}", r as u32 & 0xff_ffff));
    run("ip", &["tuntap", "add", &dev.0, "mode", "tun"]);
    let before = ip_out(&["-d", "addr", "show", "dev", &dev.0]).expect("device exists");
    let subnet = 1 + (r >> 40) as u8 % 250;
    let path = format!(
        "tun={},local=10.79.{subnet}.1,peer=10.79.{subnet}.2/24",
        dev.0
    );
    let o = braid_connect(&path, &format!("10.79.{subnet}.2:5000"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "network device {} already exists: braid creates its own TUN device",
            dev.0
        )),
        "{err}"
    );
    // Exactly as found: no address, no route, still down.
    let after = ip_out(&["-d", "addr", "show", "dev", &dev.0]).expect("device still exists");
    assert_eq!(before, after);
    assert!(!after.contains("10.79."), "{after}");
    let routes = ip_out(&["route", "show", "dev", &dev.0]).unwrap_or_default();
    assert!(
        routes.trim().is_empty(),
        "routes left on {}: {routes}",
        dev.0
    );
}

#[test]
fn a_device_of_that_name_in_the_target_namespace_is_refused() {
    let _g = serial();
    if !root_or_skip("a_device_of_that_name_in_the_target_namespace_is_refused") {
        return;
    }
    let r = random_u64();
    let ns = Netns(format!("braid-tunx-{:08x}", r as u32));
    run("ip", &["netns", "add", &ns.0]);
    let dev = format!("by{:06x}", (r >> 32) as u32 & 0xff_ffff);
    run(
        "ip",
        &[
            "netns", "exec", &ns.0, "ip", "tuntap", "add", &dev, "mode", "tun",
        ],
    );
    let path = format!(
        "tun={dev},local=10.79.251.1,peer=10.79.251.2/24,netns={}",
        ns.0
    );
    let o = braid_connect(&path, "10.79.251.2:5000");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "network device {dev} already exists in namespace {}",
            ns.0
        )),
        "{err}"
    );
    // braid's own device of that name went away with it; the namespace's one is untouched.
    assert!(ip_out(&["link", "show", "dev", &dev]).is_none());
    let theirs = ip_out(&["-n", &ns.0, "addr", "show", "dev", &dev]).expect("still there");
    assert!(!theirs.contains("10.79."), "{theirs}");
}
