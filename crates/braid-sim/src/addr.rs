//! Addressing of the simulated hosts: the one place that decides which address each host has on
//! each path and which path a destination address belongs to (so IPv6 paths can be added here).

use std::net::{IpAddr, Ipv4Addr};

/// Most paths a simulation can have (the path number is one octet of the IPv4 subnet).
pub const MAX_PATHS: usize = 255;

/// The client's address on path `i`: 10.(i+1).0.1.
pub fn client_addr(path: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, subnet_octet(path), 0, 1))
}

/// The server's address on path `i`: 10.(i+1).0.2.
pub fn server_addr(path: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, subnet_octet(path), 0, 2))
}

/// Most cross-traffic host pairs (one octet of their subnet).
pub const MAX_CROSS_PAIRS: usize = 255;

/// The client-side host of cross-traffic pair `j`: 10.0.(j+1).1 (10.0.0.0/16 is no path's).
pub fn cross_client_addr(pair: usize) -> IpAddr {
    assert!(pair < MAX_CROSS_PAIRS, "cross pair {pair} out of range");
    IpAddr::V4(Ipv4Addr::new(10, 0, (pair + 1) as u8, 1))
}

/// The server-side host of cross-traffic pair `j`: 10.0.(j+1).2.
pub fn cross_server_addr(pair: usize) -> IpAddr {
    assert!(pair < MAX_CROSS_PAIRS, "cross pair {pair} out of range");
    IpAddr::V4(Ipv4Addr::new(10, 0, (pair + 1) as u8, 2))
}

/// The cross-traffic pair whose subnet (10.0.(j+1).0/24) holds a raw IPv4 packet's destination.
pub fn cross_route(packet: &[u8]) -> Option<usize> {
    if packet.first()? >> 4 != 4 {
        return None;
    }
    let dst = packet.get(16..20)?;
    (dst[0] == 10 && dst[1] == 0 && dst[2] != 0).then(|| usize::from(dst[2]) - 1)
}

fn subnet_octet(path: usize) -> u8 {
    assert!(path < MAX_PATHS, "path index {path} out of range");
    (path + 1) as u8
}

/// The path whose subnet (10.(i+1).0.0/16) holds an IPv4 destination.
pub fn path_of_v4(dst: [u8; 4]) -> Option<usize> {
    (dst[0] == 10 && dst[1] != 0).then(|| usize::from(dst[1]) - 1)
}

/// The path whose subnet holds `addr` (a host address of either side), e.g. to tell which path
/// a subflow runs on from its local address.
pub fn path_of(addr: IpAddr) -> Option<usize> {
    match addr {
        IpAddr::V4(v4) => path_of_v4(v4.octets()),
        IpAddr::V6(_) => None,
    }
}

/// The path a raw IP packet is routed on, read from its destination address only.
/// `None` for packets too short to hold a header, other IP versions, or foreign subnets.
pub fn route(packet: &[u8]) -> Option<usize> {
    match packet.first()? >> 4 {
        4 => {
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            path_of_v4(dst)
        }
        // IPv6 paths are not assigned yet: nothing routes there.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_route_back_to_their_path() {
        for i in [0, 1, 7, 254] {
            for a in [client_addr(i), server_addr(i)] {
                let IpAddr::V4(v4) = a else { unreachable!() };
                let mut pkt = [0u8; 20];
                pkt[0] = 0x45;
                pkt[16..20].copy_from_slice(&v4.octets());
                assert_eq!(route(&pkt), Some(i));
                assert_eq!(path_of(a), Some(i));
            }
        }
    }

    #[test]
    fn foreign_short_and_v6_packets_do_not_route() {
        let mut pkt = [0u8; 20];
        pkt[0] = 0x45;
        pkt[16..20].copy_from_slice(&[192, 168, 1, 1]);
        assert_eq!(route(&pkt), None);
        pkt[16..20].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(route(&pkt), None);
        assert_eq!(route(&pkt[..19]), None);
        assert_eq!(route(&[]), None);
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        assert_eq!(route(&v6), None);
    }
}
