//! The SOCKS5 wire format (RFC 1928) and username/password authentication (RFC 1929),
//! written by hand: a few dozen lines of framing, where the crates on offer bring their own
//! server loop, resolver and connector (braid's connector is its MPTCP stack).
//!
//! Every reader takes what the client sends and turns anything malformed into a value
//! ([`Bad`]): the caller answers with the RFC's reply where one exists, else closes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

pub const VERSION: u8 = 5;
/// RFC 1929: the sub-negotiation's own version.
pub const AUTH_VERSION: u8 = 1;
pub const METHOD_NONE: u8 = 0x00;
pub const METHOD_USERPASS: u8 = 0x02;
pub const METHOD_NO_ACCEPTABLE: u8 = 0xff;

/// Reply codes (RFC 1928 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(dead_code)] // the RFC's whole table; braid sends no 2 or 6
pub enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    NetworkUnreachable = 3,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

/// Where the client wants to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    /// A name for the host's resolver.
    Domain(String, u16),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Domain(d, p) => write!(f, "{d}:{p}"),
        }
    }
}

/// The request's command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Connect,
    Bind,
    UdpAssociate,
    Unknown(u8),
}

/// Why a client's bytes are not a valid message, and how to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bad {
    /// The reply to send before closing (`None`: just close).
    pub reply: Option<Reply>,
    pub why: String,
}

impl Bad {
    fn close(why: impl Into<String>) -> Bad {
        Bad {
            reply: None,
            why: why.into(),
        }
    }
    fn reply(r: Reply, why: impl Into<String>) -> Bad {
        Bad {
            reply: Some(r),
            why: why.into(),
        }
    }
}

fn eof(what: &str) -> impl FnOnce(std::io::Error) -> Bad + '_ {
    move |e| Bad::close(format!("{what}: {e}"))
}

/// The method-selection message: VER NMETHODS METHODS (RFC 1928 §3). Returns the methods.
pub async fn read_greeting<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, Bad> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h).await.map_err(eof("greeting"))?;
    if h[0] != VERSION {
        return Err(Bad::close(format!(
            "not SOCKS5: version byte {:#04x}",
            h[0]
        )));
    }
    let mut m = vec![0u8; h[1] as usize];
    r.read_exact(&mut m)
        .await
        .map_err(eof("greeting methods"))?;
    Ok(m)
}

/// RFC 1929: VER ULEN UNAME PLEN PASSWD.
pub async fn read_userpass<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Vec<u8>, Vec<u8>), Bad> {
    let mut v = [0u8; 2];
    r.read_exact(&mut v).await.map_err(eof("authentication"))?;
    if v[0] != AUTH_VERSION {
        return Err(Bad::close(format!(
            "username/password version {:#04x} (expected 1)",
            v[0]
        )));
    }
    let mut user = vec![0u8; v[1] as usize];
    r.read_exact(&mut user).await.map_err(eof("username"))?;
    let mut pl = [0u8; 1];
    r.read_exact(&mut pl)
        .await
        .map_err(eof("password length"))?;
    let mut pass = vec![0u8; pl[0] as usize];
    r.read_exact(&mut pass).await.map_err(eof("password"))?;
    Ok((user, pass))
}

/// A domain name as the client sent it: `Target::Addr` when it is a numeric address.
pub fn domain_target(name: &[u8], port: u16) -> Result<Target, Bad> {
    if name.is_empty() {
        return Err(Bad::reply(Reply::GeneralFailure, "empty domain name"));
    }
    let Ok(s) = std::str::from_utf8(name) else {
        return Err(Bad::reply(
            Reply::HostUnreachable,
            "domain name is not UTF-8",
        ));
    };
    if s.len() > 253 || s.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(Bad::reply(
            Reply::HostUnreachable,
            format!("not a host name: {s:?}"),
        ));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Target::Addr(SocketAddr::new(ip, port)));
    }
    Ok(Target::Domain(s.to_string(), port))
}

/// The request: VER CMD RSV ATYP DST.ADDR DST.PORT (RFC 1928 §4).
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<(Command, Target), Bad> {
    let mut h = [0u8; 4];
    r.read_exact(&mut h).await.map_err(eof("request"))?;
    if h[0] != VERSION {
        return Err(Bad::close(format!(
            "request version byte {:#04x} (expected 5)",
            h[0]
        )));
    }
    let cmd = match h[1] {
        1 => Command::Connect,
        2 => Command::Bind,
        3 => Command::UdpAssociate,
        c => Command::Unknown(c),
    };
    let target = match h[3] {
        1 => {
            let mut a = [0u8; 6];
            r.read_exact(&mut a).await.map_err(eof("IPv4 address"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Target::Addr(SocketAddr::new(ip.into(), u16::from_be_bytes([a[4], a[5]])))
        }
        4 => {
            let mut a = [0u8; 18];
            r.read_exact(&mut a).await.map_err(eof("IPv6 address"))?;
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(o);
            Target::Addr(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[16], a[17]]),
            ))
        }
        3 => {
            let mut l = [0u8; 1];
            r.read_exact(&mut l).await.map_err(eof("domain length"))?;
            let mut name = vec![0u8; l[0] as usize + 2];
            r.read_exact(&mut name).await.map_err(eof("domain name"))?;
            let port = u16::from_be_bytes([name[l[0] as usize], name[l[0] as usize + 1]]);
            name.truncate(l[0] as usize);
            domain_target(&name, port)?
        }
        t => {
            return Err(Bad::reply(
                Reply::AddressTypeNotSupported,
                format!("address type {t:#04x}"),
            ))
        }
    };
    Ok((cmd, target))
}

/// VER REP RSV ATYP BND.ADDR BND.PORT.
pub fn reply(rep: Reply, bound: Option<SocketAddr>) -> Vec<u8> {
    let bound = bound.unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
    let mut v = vec![VERSION, rep as u8, 0];
    match bound.ip() {
        IpAddr::V4(a) => {
            v.push(1);
            v.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            v.push(4);
            v.extend_from_slice(&a.octets());
        }
    }
    v.extend_from_slice(&bound.port().to_be_bytes());
    v
}

/// The reply code for a failed connection attempt.
pub fn reply_for(e: &std::io::Error) -> Reply {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => Reply::ConnectionRefused,
        K::NetworkUnreachable | K::AddrNotAvailable => Reply::NetworkUnreachable,
        K::HostUnreachable | K::TimedOut => Reply::HostUnreachable,
        _ => Reply::GeneralFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    fn req(bytes: &[u8]) -> Result<(Command, Target), Bad> {
        rt().block_on(read_request(&mut &bytes[..]))
    }

    #[test]
    fn requests_of_every_address_type() {
        let (c, t) = req(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80]).unwrap();
        assert_eq!(c, Command::Connect);
        assert_eq!(t, Target::Addr("10.0.0.1:80".parse().unwrap()));
        let mut v6 = vec![5, 1, 0, 4];
        v6.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x1f, 0x90]);
        assert_eq!(
            req(&v6).unwrap().1,
            Target::Addr("[fd00::2]:8080".parse().unwrap())
        );
        let mut d = vec![5, 1, 0, 3, 11];
        d.extend_from_slice(b"example.org");
        d.extend_from_slice(&[0, 80]);
        assert_eq!(req(&d).unwrap().1, Target::Domain("example.org".into(), 80));
        // A numeric domain string is an address.
        let mut n = vec![5, 1, 0, 3, 8];
        n.extend_from_slice(b"10.1.2.3");
        n.extend_from_slice(&[0, 81]);
        assert_eq!(
            req(&n).unwrap().1,
            Target::Addr("10.1.2.3:81".parse().unwrap())
        );
        let mut n6 = vec![5, 1, 0, 3, 9];
        n6.extend_from_slice(b"[fd00::9]");
        n6.extend_from_slice(&[0, 82]);
        assert_eq!(
            req(&n6).unwrap().1,
            Target::Addr("[fd00::9]:82".parse().unwrap())
        );
        assert_eq!(
            req(&[5, 2, 0, 1, 1, 2, 3, 4, 0, 1]).unwrap().0,
            Command::Bind
        );
        assert_eq!(
            req(&[5, 3, 0, 1, 1, 2, 3, 4, 0, 1]).unwrap().0,
            Command::UdpAssociate
        );
        assert_eq!(
            req(&[5, 9, 0, 1, 1, 2, 3, 4, 0, 1]).unwrap().0,
            Command::Unknown(9)
        );
    }

    #[test]
    fn malformed_requests_are_values() {
        // Wrong version: close without reply.
        assert_eq!(
            req(&[4, 1, 0, 1, 1, 2, 3, 4, 0, 1]).unwrap_err().reply,
            None
        );
        // Unknown address type: reply 8.
        assert_eq!(
            req(&[5, 1, 0, 9, 1, 2]).unwrap_err().reply,
            Some(Reply::AddressTypeNotSupported)
        );
        // Truncated anywhere: close.
        let full = [5u8, 1, 0, 1, 10, 0, 0, 1, 0, 80];
        for n in 0..full.len() {
            assert_eq!(req(&full[..n]).unwrap_err().reply, None, "cut at {n}");
        }
        // Empty and bad domain names.
        assert_eq!(
            req(&[5, 1, 0, 3, 0, 0, 80]).unwrap_err().reply,
            Some(Reply::GeneralFailure)
        );
        assert_eq!(
            req(&[5, 1, 0, 3, 3, b'a', 0, b'b', 0, 80])
                .unwrap_err()
                .reply,
            Some(Reply::HostUnreachable)
        );
        let mut long = vec![5, 1, 0, 3, 255];
        long.extend(std::iter::repeat_n(b'a', 255));
        long.extend_from_slice(&[0, 80]);
        assert_eq!(req(&long).unwrap_err().reply, Some(Reply::HostUnreachable));
    }

    #[test]
    fn greeting_and_auth() {
        let g = rt()
            .block_on(read_greeting(&mut &[5u8, 2, 0, 2][..]))
            .unwrap();
        assert_eq!(g, vec![0, 2]);
        // No method offered: an empty list (answered with "no acceptable methods").
        assert!(rt()
            .block_on(read_greeting(&mut &[5u8, 0][..]))
            .unwrap()
            .is_empty());
        assert!(rt()
            .block_on(read_greeting(&mut &[0x47u8, 0x45][..]))
            .is_err());
        assert!(rt().block_on(read_greeting(&mut &[5u8, 3, 0][..])).is_err());
        let (u, p) = rt()
            .block_on(read_userpass(&mut &[1u8, 2, b'a', b'b', 1, b'c'][..]))
            .unwrap();
        assert_eq!((u.as_slice(), p.as_slice()), (&b"ab"[..], &b"c"[..]));
        assert!(rt()
            .block_on(read_userpass(&mut &[5u8, 1, b'a', 0][..]))
            .is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(
            reply(Reply::Succeeded, Some("10.0.0.1:4242".parse().unwrap())),
            vec![5, 0, 0, 1, 10, 0, 0, 1, 0x10, 0x92]
        );
        assert_eq!(
            reply(Reply::ConnectionRefused, None),
            vec![5, 5, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        let e = std::io::Error::from(std::io::ErrorKind::TimedOut);
        assert_eq!(reply_for(&e), Reply::HostUnreachable);
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(reply_for(&e), Reply::ConnectionRefused);
        let e = std::io::Error::from(std::io::ErrorKind::NetworkUnreachable);
        assert_eq!(reply_for(&e), Reply::NetworkUnreachable);
    }
}
