//! Path managers (RFC 8684 §3.4 leaves the policy to the implementation), selected by name.
//!
//! Like Linux's `pm.c`, a path manager is a set of event entry points — the connection is fully
//! established, the peer announced or removed an address, a subflow closed, the path manager's
//! own timer fired — and answers with actions: announce an address, open a subflow, wake me at.
//! A new path manager is one file and one line in [`REGISTRY`].

use crate::time::Instant;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub mod fullmesh;
pub mod ndiffports;
pub mod none;
pub mod signal;

/// Makes a path manager from the argument after `=` in its name (`None` without one).
pub type Constructor = fn(Option<&str>) -> Result<Box<dyn PathManager>, String>;

/// Every path manager by name (as written in help texts), the default first.
pub const REGISTRY: &[(&str, Constructor)] = &[
    ("fullmesh", |a| {
        no_arg("fullmesh", a, || Box::new(fullmesh::FullMesh::default()))
    }),
    ("ndiffports=N", ndiffports::NDiffPorts::build),
    ("signal", |a| {
        no_arg("signal", a, || Box::new(signal::Signal))
    }),
    ("none", |a| no_arg("none", a, || Box::new(none::NoPm))),
];

fn no_arg(
    name: &str,
    arg: Option<&str>,
    make: fn() -> Box<dyn PathManager>,
) -> Result<Box<dyn PathManager>, String> {
    match arg {
        None => Ok(make()),
        Some(a) => Err(format!(
            "path manager {name} takes no argument (got \"={a}\")"
        )),
    }
}

/// The names of [`REGISTRY`] (`ndiffports=N` takes a count).
pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|r| r.0).collect()
}

/// The path manager `spec` names (`NAME` or `NAME=ARG`), or why not.
pub fn new_path_manager(spec: &str) -> Result<Box<dyn PathManager>, String> {
    let (name, arg) = match spec.split_once('=') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    let entry = REGISTRY
        .iter()
        .find(|r| r.0.split('=').next() == Some(name))
        .ok_or_else(|| {
            format!(
                "unknown path manager {spec:?} (known: {})",
                names().join(", ")
            )
        })?;
    (entry.1)(arg)
}

/// What happened to the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmEvent {
    /// The connection is fully established (RFC 8684 §3.1): subflows may be added.
    FullyEstablished,
    /// The peer announced an address (ADD_ADDR, RFC 8684 §3.4.1).
    AddressAnnounced { id: u8, addr: IpAddr },
    /// The peer removed an address (REMOVE_ADDR, RFC 8684 §3.4.2).
    AddressRemoved { id: u8 },
    /// A subflow closed (reset, timed out or finished).
    SubflowClosed {
        local: SocketAddr,
        remote: SocketAddr,
        /// It failed (reset or timed out, neither address removed): worth opening again.
        recreate: bool,
    },
    /// The time asked for with [`PmAction::WakeAt`] came.
    Timer,
    /// One of our addresses came (or came back) at run time (`Endpoint::add_local_addr_with`).
    LocalAddressAdded { addr: IpAddr },
    /// One of our addresses went away (`Endpoint::remove_local_addr`); its subflows are closed.
    LocalAddressRemoved { addr: IpAddr },
}

/// What the path manager wants done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmAction {
    /// Announce one of our addresses with this address id.
    Announce { id: u8, addr: IpAddr },
    /// Open a subflow from `local` (a new ephemeral port) to `remote` (MP_JOIN).
    Join { local: IpAddr, remote: SocketAddr },
    /// Deliver [`PmEvent::Timer`] at this time.
    WakeAt(Instant),
}

/// What a path manager may know of its connection when an event comes.
#[derive(Clone, Copy, Debug)]
pub struct PmContext<'a> {
    pub now: Instant,
    /// We accepted the connection (else we opened it).
    pub server: bool,
    /// This endpoint's addresses, in order (address id = position + 1; the initial one is 0).
    pub local_addrs: &'a [IpAddr],
    /// Those of `local_addrs` that went away (no subflow may use them until they come back).
    pub gone: &'a [IpAddr],
    /// Local addresses that have a subflow not closed, and the remote addresses of those.
    pub live_locals: &'a [IpAddr],
    pub live_remotes: &'a [SocketAddr],
    /// The initial subflow's addresses.
    pub first_local: SocketAddr,
    pub first_remote: SocketAddr,
    /// Addresses the peer announced (id, address), and the ports announced with them (id,
    /// port; an address without one is at the initial subflow's port).
    pub remote_addrs: &'a [(u8, IpAddr)],
    pub remote_ports: &'a [(u8, u16)],
    /// Subflows the connection has (all states), and the most it may have.
    pub subflows: usize,
    pub max_subflows: usize,
    /// Smoothed RTT of the initial subflow.
    pub srtt: Option<Duration>,
}

impl PmContext<'_> {
    /// Where to join the peer's announced address `id` at `addr`: its announced port, else
    /// the initial subflow's.
    pub fn announced(&self, id: u8, addr: IpAddr) -> SocketAddr {
        let port = self
            .remote_ports
            .iter()
            .find(|p| p.0 == id)
            .map_or(self.first_remote.port(), |p| p.1);
        SocketAddr::new(addr, port)
    }

    /// The address id of one of our addresses (0 for the initial subflow's).
    pub fn local_id(&self, a: IpAddr) -> u8 {
        if a == self.first_local.ip() {
            return 0;
        }
        self.local_addrs
            .iter()
            .position(|&x| x == a)
            .map_or(0, |p| (p + 1).min(255) as u8)
    }
}

/// The path manager of one connection.
pub trait PathManager: std::fmt::Debug + Send {
    fn name(&self) -> &'static str;
    /// One event; actions go to `out`.
    fn on_event(&mut self, ev: &PmEvent, cx: &PmContext<'_>, out: &mut Vec<PmAction>);
}

/// Announces every other address of ours of the initial subflow's family (at most 8), as
/// Linux's `signal` endpoints do (RFC 8684 §3.4.1).
pub(crate) fn announce_others(cx: &PmContext<'_>, out: &mut Vec<PmAction>) {
    let first = cx.first_local.ip();
    let mut n = 0;
    for (p, &a) in cx.local_addrs.iter().enumerate() {
        if a != first && a.is_ipv4() == first.is_ipv4() && n < 8 && !cx.gone.contains(&a) {
            n += 1;
            out.push(PmAction::Announce {
                id: (p + 1).min(255) as u8,
                addr: a,
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    pub fn ip(a: u8, b: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, a, b))
    }

    pub fn cx<'a>(
        server: bool,
        local: &'a [IpAddr],
        remote_addrs: &'a [(u8, IpAddr)],
        now_ms: u64,
    ) -> PmContext<'a> {
        PmContext {
            now: Instant::ZERO + Duration::from_millis(now_ms),
            server,
            local_addrs: local,
            gone: &[],
            live_locals: &[],
            live_remotes: &[],
            first_local: SocketAddr::new(local[0], 40000),
            first_remote: SocketAddr::new(ip(0, 2), 5000),
            remote_addrs,
            remote_ports: &[],
            subflows: 1,
            max_subflows: 8,
            srtt: Some(Duration::from_millis(20)),
        }
    }

    #[test]
    fn registry_parses_names_and_arguments() {
        for n in ["fullmesh", "signal", "none", "ndiffports=3"] {
            let pm = new_path_manager(n).unwrap();
            assert_eq!(pm.name(), n.split('=').next().unwrap());
        }
        assert_eq!(
            new_path_manager("bogus").unwrap_err(),
            "unknown path manager \"bogus\" (known: fullmesh, ndiffports=N, signal, none)"
        );
        assert!(new_path_manager("none=2")
            .unwrap_err()
            .contains("takes no argument"));
        assert!(new_path_manager("ndiffports")
            .unwrap_err()
            .contains("ndiffports=N"));
        assert!(new_path_manager("ndiffports=0").is_err());
        assert!(new_path_manager("ndiffports=x").is_err());
    }

    #[test]
    fn signal_announces_the_other_addresses() {
        let local = [ip(0, 1), ip(1, 1), ip(2, 1)];
        let mut out = Vec::new();
        signal::Signal.on_event(
            &PmEvent::FullyEstablished,
            &cx(true, &local, &[], 0),
            &mut out,
        );
        assert_eq!(
            out,
            [
                PmAction::Announce {
                    id: 2,
                    addr: ip(1, 1)
                },
                PmAction::Announce {
                    id: 3,
                    addr: ip(2, 1)
                }
            ]
        );
        out.clear();
        none::NoPm.on_event(
            &PmEvent::FullyEstablished,
            &cx(true, &local, &[], 0),
            &mut out,
        );
        assert!(out.is_empty());
    }
}
