//! The API over the loopback stack (the real engine, no root): both ends of each connection
//! are braid's.

use crate::{MptcpStream, Stack};
use braid_proto::EndpointConfig;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::thread;
use std::time::Duration;

fn stack(mptcp: bool) -> Stack {
    let addrs: Vec<IpAddr> = vec!["10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap()];
    let mut cfg = EndpointConfig::default();
    cfg.mptcp.enabled = mptcp;
    Stack::loopback(&addrs, cfg).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Deterministic test bytes.
fn data(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A server that echoes everything back, then closes its side after the client's FIN.
fn echo_server(stack: &Stack, port: u16) -> thread::JoinHandle<u64> {
    let l = stack.listen(port).unwrap();
    thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut n = 0u64;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let k = (&s).read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            (&s).write_all(&buf[..k]).unwrap();
            n += k as u64;
        }
        s.shutdown(Shutdown::Write).unwrap();
        n
    })
}

fn roundtrip(mptcp: bool) {
    let st = stack(mptcp);
    let server = echo_server(&st, 7);
    let c = st.connect(addr("10.9.0.2:7")).unwrap();
    assert_eq!(c.peer_addr().unwrap(), addr("10.9.0.2:7"));
    assert_eq!(
        c.local_addr().unwrap().ip(),
        "10.9.0.1".parse::<IpAddr>().unwrap()
    );
    let payload = data(4 << 20, 7);
    let w = c.try_clone().unwrap();
    let p2 = payload.clone();
    let writer = thread::spawn(move || {
        (&w).write_all(&p2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(server.join().unwrap(), payload.len() as u64);
    if got != payload {
        let first = got.iter().zip(payload.iter()).position(|(a, b)| a != b);
        let info = c.info().unwrap();
        panic!(
            "echoed bytes differ: got {} of {} bytes, first difference at {first:?}; {info:?}",
            got.len(),
            payload.len()
        );
    }
    let info = c.info().unwrap();
    assert_eq!(info.mptcp, mptcp);
    assert!(!info.fallback);
    assert!(!info.subflows.is_empty());
    assert!(info.bytes_acked >= payload.len() as u64, "{info:?}");
    // Reads after the FIN stay at end of file; writes after shutdown fail.
    assert_eq!((&c).read(&mut [0u8; 8]).unwrap(), 0);
    assert_eq!((&c).write(b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
}

#[test]
fn echo_4mib_mptcp_half_close_both_ways() {
    roundtrip(true);
}

#[test]
fn echo_4mib_plain_tcp() {
    roundtrip(false);
}

#[test]
fn refused_unreachable_and_timed_out_are_told_apart() {
    let st = stack(true);
    let e = st.connect(addr("10.9.0.2:9")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    assert!(e.to_string().contains("10.9.0.2:9"), "{e}");
    let e = st.connect(addr("[fd00::1]:80")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NetworkUnreachable, "{e}");
    // Nobody owns 10.9.0.3: the SYN goes unanswered.
    let t0 = crate::core::mono_now();
    let e = st
        .connect_timeout(addr("10.9.0.3:80"), Duration::from_millis(300))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    // Failed attempts leave nothing behind.
    wait_until(|| st.connections().unwrap().is_empty());
}

fn wait_until(mut f: impl FnMut() -> bool) {
    let t0 = crate::core::mono_now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "condition not reached"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn read_timeout_and_reset_by_peer() {
    let st = stack(true);
    let l = st.listen(80).unwrap();
    let c = st.connect(addr("10.9.0.2:80")).unwrap();
    let (s, from) = l.accept().unwrap();
    assert_eq!(from, c.local_addr().unwrap());
    c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    assert!(c.set_read_timeout(Some(Duration::ZERO)).is_err());
    let t0 = crate::core::mono_now();
    let e = (&c).read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(t0.elapsed() >= Duration::from_millis(50));
    c.set_read_timeout(None).unwrap();
    s.abort();
    let e = (&c).read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert!(c.take_error().unwrap().is_some());
}

#[test]
fn dropping_streams_releases_connections() {
    let st = stack(true);
    let l = st.listen(81).unwrap();
    for _ in 0..20 {
        let c = st.connect(addr("10.9.0.2:81")).unwrap();
        let (s, _) = l.accept().unwrap();
        (&c).write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        (&s).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        assert_eq!(st.connections().unwrap().len(), 2);
        drop(c);
        drop(s);
        wait_until(|| st.connections().unwrap().is_empty());
    }
}

#[test]
fn shutdown_read_discards_and_reads_zero() {
    let st = stack(false);
    let l = st.listen(82).unwrap();
    let c = st.connect(addr("10.9.0.2:82")).unwrap();
    let (s, _) = l.accept().unwrap();
    c.shutdown(Shutdown::Read).unwrap();
    (&s).write_all(&data(1 << 20, 3)).unwrap();
    assert_eq!((&c).read(&mut [0u8; 16]).unwrap(), 0);
    // The peer's bytes are taken (not left to block it).
    s.shutdown(Shutdown::Write).unwrap();
    (&s).flush().unwrap();
}

#[test]
fn many_connections_at_once() {
    let st = stack(true);
    let l = st.listen(83).unwrap();
    let server = thread::spawn(move || {
        let mut hs = Vec::new();
        for s in l.incoming().take(50) {
            let s: MptcpStream = s.unwrap();
            hs.push(thread::spawn(move || {
                let mut v = Vec::new();
                (&s).read_to_end(&mut v).unwrap();
                (&s).write_all(&v).unwrap();
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
    });
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let st = st.clone();
            thread::spawn(move || {
                let c = st.connect(addr("10.9.0.2:83")).unwrap();
                let d = data(100_000 + i * 1000, i as u64);
                (&c).write_all(&d).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                let mut back = Vec::new();
                (&c).read_to_end(&mut back).unwrap();
                assert!(back == d);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
}

#[test]
fn stopped_stack_fails_calls_instead_of_hanging() {
    let st = stack(true);
    let l = st.listen(84).unwrap();
    let c = st.connect(addr("10.9.0.2:84")).unwrap();
    st.shutdown(Duration::ZERO);
    assert_eq!(
        (&c).read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::ConnectionAborted
    );
    assert!(l.accept().is_err());
    assert!(st.connect(addr("10.9.0.2:84")).is_err());
    assert!(st.connections().unwrap().is_empty());
}

#[cfg(feature = "tokio")]
#[test]
fn tokio_twins_copy_with_half_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let st = stack(true);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on(async move {
        let l = st.listen(85).unwrap().into_async();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut v = Vec::new();
            s.read_to_end(&mut v).await.unwrap();
            s.write_all(&v).await.unwrap();
            s.shutdown().await.unwrap();
            v.len()
        });
        let mut c = st.connect_async(addr("10.9.0.2:85")).await.unwrap();
        let d = data(2 << 20, 9);
        c.write_all(&d).await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).await.unwrap();
        assert_eq!(server.await.unwrap(), d.len());
        assert!(back == d);
        let e = st.connect_async(addr("10.9.0.2:86")).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    });
}

#[cfg(feature = "tokio")]
#[test]
fn a_cancelled_connect_is_released() {
    let st = stack(true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        // Nobody answers 10.9.0.3: cancel the attempt after 50 ms.
        let f = st.connect_async(addr("10.9.0.3:80"));
        assert!(tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .is_err());
    });
    wait_until(|| st.connections().unwrap().is_empty());
}

/// The control socket of a [`Stack`]: `monitor` streams the engine's events (connection and
/// MPTCP), `path` is refused clearly by a stack without TUN paths.
#[test]
fn stack_control_socket_monitors_events_and_refuses_paths_it_cannot_change() {
    use crate::control::{ControlServer, PathRequest};
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;
    let stack = stack(true);
    let dir = std::env::temp_dir().join(format!("braid-api-mon-{}", std::process::id()));
    let path = dir.join("s.sock");
    let server =
        ControlServer::bind(&path, "braid test", std::sync::Arc::new(stack.clone())).unwrap();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    writeln!(s, r#"{{"cmd":"monitor"}}"#).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert!(l.contains(r#""ok":true"#), "{l}");
    let m = stack.monitor();
    for _ in 0..1000 {
        if m.active() {
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    let echo = echo_server(&stack, 7070);
    let mut c = stack.connect(addr("10.9.0.2:7070")).unwrap();
    c.write_all(&data(100_000, 3)).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 100_000);
    assert_eq!(echo.join().unwrap(), 100_000);
    // Both ends' created, the MPTCP establishment and the join from the second address.
    let mut seen: Vec<String> = Vec::new();
    while !(seen.iter().filter(|e| *e == "created").count() >= 2
        && seen.iter().any(|e| e == "established")
        && seen.iter().any(|e| e == "sub_established"))
    {
        l.clear();
        r.read_line(&mut l)
            .unwrap_or_else(|e| panic!("monitor stopped ({e}) after {seen:?}"));
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert!(v["time"].as_f64().is_some_and(|t| t > 1e9), "{l}");
        seen.push(v["event"].as_str().unwrap().to_string());
    }
    let e = stack.path(&PathRequest::Del("bt0".into())).unwrap_err();
    assert!(e.contains("no TUN paths"), "{e}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
