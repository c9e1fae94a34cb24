//! What the long-running commands built on `braid-api` share: the stack from the command line,
//! the control socket, and the wait for SIGINT/SIGTERM (or --timeout).

use crate::net::NetArgs;
use braid_api::control::{
    apply_path, default_path, path_result, ControlHandler, ControlServer, LoopRequest,
    PolledControl,
};
use braid_api::events;
use braid_api::{ConnStatus, Stack, StackConfig, StreamInfo};
use braid_io::Driver;
use braid_proto::{ConnHandle, EndpointConfig, Event, Instant};
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long open connections may take to close in order at exit.
pub const EXIT_GRACE: Duration = Duration::from_secs(1);

pub fn usage_error(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

pub fn failure(msg: &str) -> ExitCode {
    eprintln!("braid: {msg}");
    ExitCode::from(1)
}

/// The stack the common options describe (signals caught: the command decides when to stop).
pub fn stack_config(net: &NetArgs) -> StackConfig {
    let mut c = StackConfig::new(net.paths.clone());
    let e: &mut EndpointConfig = &mut c.endpoint;
    e.tcp.cc = net.cc.clone();
    e.mptcp.enabled = !net.no_mptcp;
    e.mptcp.scheduler = net.scheduler.clone();
    e.mptcp.path_manager = net.path_manager.clone();
    e.mptcp.checksum = net.checksum;
    c.seed = net.seed;
    c.pcap = net.pcap.clone();
    c.catch_signals = true;
    c
}

/// Opens the stack; a bad setting is a usage error, a device that cannot be made a failure.
pub fn open_stack(config: StackConfig) -> Result<Stack, ExitCode> {
    Stack::open(config).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidInput => usage_error(&e.to_string()),
        _ => failure(&e.to_string()),
    })
}

/// Binds the control socket (`--control` or /run/braid/PROGRAM-PID.sock) and says where on
/// stderr.
pub fn open_control(
    net: &NetArgs,
    program: &str,
    handler: Arc<dyn ControlHandler>,
) -> Result<ControlServer, ExitCode> {
    open_control_at(net.control.as_deref(), net.quiet, program, handler)
}

/// [`open_control`] for commands with options of their own: `control` is `--control`.
pub fn open_control_at(
    control: Option<&std::path::Path>,
    quiet: bool,
    program: &str,
    handler: Arc<dyn ControlHandler>,
) -> Result<ControlServer, ExitCode> {
    let path = control.map_or_else(|| default_path(program), |p| p.to_path_buf());
    let server = ControlServer::bind(&path, &format!("braid {program}"), handler)
        .map_err(|e| failure(&format!("control socket: {e}")))?;
    if !quiet {
        eprintln!("braid: control socket {}", server.path().display());
    }
    Ok(server)
}

/// Waits for SIGINT/SIGTERM, --timeout or the stack's end; says which.
pub fn wait_for_stop(stack: &Stack, timeout: Option<Duration>) -> &'static str {
    if stack.wait_interrupted(timeout) {
        "interrupted"
    } else if timeout.is_some() && !stack_stopped(stack) {
        "timeout"
    } else {
        "stack stopped"
    }
}

fn stack_stopped(stack: &Stack) -> bool {
    stack.connections().is_err()
}

/// The control socket of a command whose own loop owns the engine (`connect`, `listen`).
pub struct LoopControl {
    _server: ControlServer,
    poll: Arc<PolledControl>,
}

impl LoopControl {
    /// `control` is `--control` (default: /run/braid/PROGRAM-PID.sock).
    pub fn open(
        control: Option<&std::path::Path>,
        quiet: bool,
        program: &str,
        drv: &mut Driver,
    ) -> Result<LoopControl, ExitCode> {
        let poll = PolledControl::new().map_err(|e| failure(&format!("control socket: {e}")))?;
        let server = open_control_at(control, quiet, program, poll.clone())?;
        drv.set_wake_fd(Some(poll.wake_fd()));
        Ok(LoopControl {
            _server: server,
            poll,
        })
    }

    /// Answers waiting requests (`status` with the connections `handles` names, `path`
    /// on the data plane), and publishes the data plane's path changes to monitors.
    pub fn serve(
        &self,
        drv: &mut Driver,
        handles: &mut dyn Iterator<Item = ConnHandle>,
        outgoing: bool,
    ) {
        let mut handles = Some(handles);
        self.poll.serve(|req| match req {
            LoopRequest::Status => {
                let conns: Vec<ConnStatus> = handles
                    .take()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| {
                        drv.endpoint.conn_info(h).map(|c| ConnStatus {
                            id: h.0,
                            direction: if outgoing { "connect" } else { "accept" },
                            info: StreamInfo::from_conn_info(&c),
                        })
                    })
                    .collect();
                let paths: Vec<_> = drv.paths().cloned().collect();
                let counters: Vec<_> = drv.endpoint.counters().iter().collect();
                Ok(braid_api::control::status_value(&paths, &conns, &counters))
            }
            LoopRequest::Path(p) => apply_path(drv, p).map(|spec| path_result(&spec)),
        });
        let evs: Vec<_> = drv.take_path_events().collect();
        let m = self.poll.events();
        if m.active() {
            for ev in evs {
                m.publish(events::path_event(drv.wall(ev.at), &ev));
            }
        }
    }

    /// Publishes an engine event to monitors (connection ids are the engine's handles).
    pub fn event(&self, drv: &Driver, now: Instant, ev: &Event) {
        let m = self.poll.events();
        if !m.active() {
            return;
        }
        let name = |ip| drv.path_name(ip).map(str::to_string);
        let v = match ev {
            Event::Closed(h, reason) => {
                let Some(i) = drv.endpoint.conn_info(*h) else {
                    return;
                };
                let mut o = events::conn_event(
                    "closed",
                    drv.wall(now),
                    Some(h.0),
                    Some(i.local),
                    i.remote,
                    &name,
                );
                o.insert("reason".into(), json!(events::close_reason(*reason)));
                Value::Object(o)
            }
            Event::Mptcp { conn, event } => {
                let addrs = drv.endpoint.conn_info(*conn).map(|i| (i.local, i.remote));
                events::mp_event(drv.wall(now), Some(conn.0), event, addrs, &name)
            }
            _ => return,
        };
        m.publish(v);
    }

    /// Publishes the `created` event of a new connection.
    pub fn created(&self, drv: &Driver, now: Instant, h: ConnHandle) {
        let m = self.poll.events();
        if !m.active() {
            return;
        }
        let Some(i) = drv.endpoint.conn_info(h) else {
            return;
        };
        let name = |ip| drv.path_name(ip).map(str::to_string);
        m.publish(Value::Object(events::conn_event(
            "created",
            drv.wall(now),
            Some(h.0),
            Some(i.local),
            i.remote,
            &name,
        )));
    }
}
