//! braid-api: braid's userspace Multipath TCP as a library.
//!
//! A [`Stack`] runs braid's engine (`braid-proto`) on its own thread over TUN paths (`braid-io`);
//! [`MptcpStream`] and [`MptcpListener`] are used like `std::net::TcpStream` and `TcpListener`.
//! A connection is MPTCP (RFC 8684) when the peer speaks it and plain TCP when it does not —
//! the same types either way; [`MptcpStream::info`] tells which, with every subflow. With the
//! `tokio` feature, [`aio::AsyncMptcpStream`] and [`aio::AsyncMptcpListener`] are the
//! `AsyncRead`/`AsyncWrite` twins over the same connections.
//!
//! Threads meet the engine through shared per-connection queues: a request wakes the engine
//! thread with one byte on a socket pair its poll loop watches; a blocked reader or writer
//! sleeps on a condition variable (an async task registers its waker) and is woken only when
//! its connection changed. Nothing spins.
//!
//! Over TUN devices (root, or CAP_NET_ADMIN):
//!
//! ```no_run
//! use braid_api::{Stack, StackConfig};
//! use std::io::{Read, Write};
//!
//! let paths = vec![
//!     "tun=bt0,local=10.77.1.1,peer=10.77.1.2/24".parse().unwrap(),
//!     "tun=bt1,local=10.77.2.1,peer=10.77.2.2/24".parse().unwrap(),
//! ];
//! let stack = Stack::open(StackConfig::new(paths))?;
//! let mut s = stack.connect("10.77.1.2:80".parse().unwrap())?;
//! s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
//! s.shutdown(std::net::Shutdown::Write)?;
//! let mut page = Vec::new();
//! s.read_to_end(&mut page)?;
//! let info = s.info()?;
//! println!("{} subflows, fell back to TCP: {}", info.subflows.len(), info.fallback);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Without root, [`Stack::loopback`] runs the same engine on an in-memory network where the
//! stack talks to itself (one address dials another):
//!
//! ```
//! use braid_api::Stack;
//! use std::io::{Read, Write};
//! use std::net::{IpAddr, Shutdown};
//!
//! let addrs: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
//! let stack = Stack::loopback(&addrs, Default::default())?;
//! let listener = stack.listen(7)?;
//! let server = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
//!     let (mut s, _peer) = listener.accept()?;
//!     let mut got = Vec::new();
//!     s.read_to_end(&mut got)?;          // until the client's FIN
//!     s.write_all(b"thanks")?;
//!     Ok(got)
//! });
//! let mut c = stack.connect("10.0.0.2:7".parse().unwrap())?;
//! c.write_all(b"hello over MPTCP")?;
//! c.shutdown(Shutdown::Write)?;
//! let mut answer = String::new();
//! c.read_to_string(&mut answer)?;
//! assert_eq!(answer, "thanks");
//! assert_eq!(server.join().unwrap()?, b"hello over MPTCP");
//! assert!(c.info()?.mptcp);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Errors are `std::io::Error`s with the usual kinds and a message naming the destination:
//! `ConnectionRefused` (RST to the SYN), `TimedOut` (no answer within
//! [`StackConfig::connect_timeout`], or retransmissions exhausted), `ConnectionReset`,
//! `NetworkUnreachable` (no path of the destination's address family).
//!
//! [`control`] is the control socket every long-running `braid` command opens, which
//! `braid status` reads.

#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
pub mod aio;
pub mod control;
mod core;
mod engine;
pub mod events;
pub mod info;
mod plane;
mod stack;
mod stream;

pub use braid_io::PathSpec;
pub use braid_proto::EndpointConfig;
pub use info::{ConnStatus, StreamInfo, SubflowStats};
pub use stack::{Stack, StackConfig};
pub use stream::{Incoming, MptcpListener, MptcpStream};

#[cfg(test)]
mod tests;
