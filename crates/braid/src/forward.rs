//! `braid listen --forward HOST:PORT`: every connection braid accepts (MPTCP, or plain TCP by
//! fallback) is relayed to HOST:PORT through the host kernel's TCP — a converter, so that a
//! server without MPTCP serves MPTCP clients.
//!
//! A target that refuses or does not answer is reported per connection on stderr, and the
//! client's connection is reset (so its `connect` peer sees the failure, not an empty answer).

use crate::app::{self, failure, usage_error};
use crate::net::NetArgs;
use braid_api::aio::AsyncMptcpStream;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest the connection to the target may take.
const TARGET_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    relayed: AtomicU64,
    failed: AtomicU64,
}

/// Connects to the first of `targets` that answers.
async fn dial(targets: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for t in targets {
        match tokio::time::timeout(TARGET_TIMEOUT, TcpStream::connect(t)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = Some(e),
            Err(_) => {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", TARGET_TIMEOUT.as_secs()),
                ))
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}

async fn relay(
    mut client: AsyncMptcpStream,
    from: SocketAddr,
    target: String,
    addrs: Arc<Vec<SocketAddr>>,
    stats: Arc<Stats>,
    quiet: bool,
) {
    let id = client.id();
    let mut upstream = match dial(&addrs).await {
        Ok(s) => s,
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "braid: forward: connection #{id} from {from}: connecting to {target}: {e}; \
                 resetting the client's connection"
            );
            client.abort();
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    stats.relayed.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        if !quiet {
            eprintln!("braid: forward: connection #{id} from {from}: {e}");
        }
        client.abort();
    }
}

/// Runs `braid listen --forward`.
pub fn main(net: &NetArgs, port: u16, target: &str) -> ExitCode {
    if port == 0 {
        return usage_error("--port must be 1..65535");
    }
    let addrs: Vec<SocketAddr> = match target.to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => {
            return usage_error(&format!(
                "--forward {target:?}: {e} (expected HOST:PORT, e.g. 127.0.0.1:8080)"
            ))
        }
    };
    if addrs.is_empty() {
        return usage_error(&format!("--forward {target:?}: the name has no address"));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return failure(&format!("starting the runtime: {e}")),
    };
    let stack = match app::open_stack(app::stack_config(net)) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let listener = match stack.listen(port) {
        Ok(l) => l.into_async(),
        Err(e) => {
            stack.shutdown(Duration::ZERO);
            return failure(&format!("listen on port {port}: {e}"));
        }
    };
    let control = match app::open_control(net, "listen", Arc::new(stack.clone())) {
        Ok(c) => c,
        Err(code) => {
            stack.shutdown(Duration::ZERO);
            return code;
        }
    };
    if !net.quiet {
        let at: Vec<String> = listener
            .local_addrs()
            .iter()
            .map(|a| a.to_string())
            .collect();
        eprintln!(
            "braid: listening on {}, forwarding to {target} ({})",
            at.join(", "),
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let stats = Arc::new(Stats::default());
    let addrs = Arc::new(addrs);
    let (st, quiet, target) = (stats.clone(), net.quiet, target.to_string());
    let acceptor = rt.spawn(async move {
        while let Ok((s, from)) = listener.accept().await {
            st.accepted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(relay(
                s,
                from,
                target.clone(),
                addrs.clone(),
                st.clone(),
                quiet,
            ));
        }
    });
    let why = app::wait_for_stop(&stack, net.timeout);
    acceptor.abort();
    if !net.quiet {
        eprintln!(
            "braid: forward stopping ({why}): {} accepted, {} relayed, {} failed",
            stats.accepted.load(Ordering::Relaxed),
            stats.relayed.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed)
        );
    }
    drop(control);
    stack.shutdown(app::EXIT_GRACE);
    rt.shutdown_timeout(Duration::from_secs(1));
    match why {
        "stack stopped" => failure("the stack stopped unexpectedly"),
        // --timeout: "give up (exit 1)", as for every command that takes it.
        "timeout" => failure("timed out (--timeout)"),
        _ => ExitCode::SUCCESS,
    }
}
