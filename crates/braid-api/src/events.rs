//! Engine and path events as the control socket's `monitor` lines (see [`crate::control`]):
//! one JSON object each, `{"event": NAME, "time": UNIX_SECONDS, ...}`.

use braid_io::{PathChange, PathEvent};
use braid_proto::endpoint::CloseReason;
use braid_proto::{MpEvent, SubClose};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Seconds since the Unix epoch, to the microsecond.
fn secs(wall: Duration) -> f64 {
    (wall.as_micros() as f64) / 1e6
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The text of a subflow's end.
pub fn sub_close_reason(r: SubClose) -> &'static str {
    match r {
        SubClose::Reset(_) => "reset",
        SubClose::Timeout => "timeout",
        SubClose::PeerRemoved => "peer removed address",
        SubClose::LocalGone => "local path gone",
        SubClose::Closed => "closed",
    }
}

/// The text of a connection's end.
pub fn close_reason(r: CloseReason) -> &'static str {
    match r {
        CloseReason::Normal => "closed",
        CloseReason::Refused => "refused",
        CloseReason::Reset => "reset",
        CloseReason::TimedOut => "timeout",
        CloseReason::Aborted => "aborted",
    }
}

/// A connection-level event (`created`, `closed`; `established` for plain TCP is not sent).
/// `path` names the TUN device of a local address.
pub fn conn_event(
    name: &str,
    wall: Duration,
    conn: Option<u64>,
    local: Option<SocketAddr>,
    remote: SocketAddr,
    path: &dyn Fn(IpAddr) -> Option<String>,
) -> Map<String, Value> {
    object(json!({
        "event": name,
        "time": secs(wall),
        "conn": conn,
        "local": local.map(|a| a.to_string()),
        "remote": remote.to_string(),
        "path": local.and_then(|a| path(a.ip())),
    }))
}

/// An MPTCP event of connection `conn`; `addrs` are the connection's first subflow's local
/// and remote addresses (for the connection-level ones).
pub fn mp_event(
    wall: Duration,
    conn: Option<u64>,
    ev: &MpEvent,
    addrs: Option<(SocketAddr, SocketAddr)>,
    path: &dyn Fn(IpAddr) -> Option<String>,
) -> Value {
    let sub = |name: &str, local: &SocketAddr, remote: &SocketAddr| {
        conn_event(name, wall, conn, Some(*local), *remote, path)
    };
    let conn_level = |name: &str| {
        let mut m = object(json!({"event": name, "time": secs(wall), "conn": conn}));
        if let Some((l, r)) = addrs {
            m.insert("local".into(), json!(l.to_string()));
            m.insert("remote".into(), json!(r.to_string()));
            m.insert("path".into(), json!(path(l.ip())));
        }
        m
    };
    let m = match *ev {
        MpEvent::Established => conn_level("established"),
        MpEvent::Announced { id, addr, port } => {
            let mut m = conn_level("announced");
            m.insert("id".into(), json!(id));
            m.insert("addr".into(), json!(addr.to_string()));
            m.insert("port".into(), json!(port));
            m
        }
        MpEvent::Removed { id } => {
            let mut m = conn_level("removed");
            m.insert("id".into(), json!(id));
            m
        }
        MpEvent::SubEstablished {
            local,
            remote,
            backup,
        } => {
            let mut m = sub("sub_established", &local, &remote);
            m.insert("backup".into(), json!(backup));
            m
        }
        MpEvent::SubClosed {
            local,
            remote,
            reason,
        } => {
            let mut m = sub("sub_closed", &local, &remote);
            m.insert("reason".into(), json!(sub_close_reason(reason)));
            if let SubClose::Reset(code) = reason {
                m.insert("reset_code".into(), json!(code));
            }
            m
        }
        MpEvent::SubPriority {
            local,
            remote,
            backup,
        } => {
            let mut m = sub("sub_priority", &local, &remote);
            m.insert("backup".into(), json!(backup));
            m
        }
    };
    Value::Object(m)
}

/// A path change (added, removed, device down, up or gone, backup flag set).
pub fn path_event(wall: Duration, ev: &PathEvent) -> Value {
    let name = match ev.change {
        PathChange::Added => "path_added",
        PathChange::Removed => "path_removed",
        PathChange::Down => "path_down",
        PathChange::Up => "path_up",
        PathChange::Gone => "path_gone",
        PathChange::Backup(_) => "path_priority",
    };
    let mut m = object(json!({
        "event": name,
        "time": secs(wall),
        "tun": ev.tun,
        "local": ev.local.to_string(),
    }));
    if let PathChange::Backup(b) = ev.change {
        m.insert("backup".into(), json!(b));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_fields() {
        let l: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let r: SocketAddr = "10.0.1.2:80".parse().unwrap();
        let name = |ip: IpAddr| (ip == l.ip()).then(|| "bt0".to_string());
        let wall = Duration::from_millis(1_764_636_000_125);
        let ev = MpEvent::SubClosed {
            local: l,
            remote: r,
            reason: SubClose::Reset(Some(4)),
        };
        let v = mp_event(wall, Some(3), &ev, None, &name);
        assert_eq!(v["event"], "sub_closed");
        assert_eq!(v["conn"], 3);
        assert_eq!(v["path"], "bt0");
        assert_eq!(v["reason"], "reset");
        assert_eq!(v["reset_code"], 4);
        assert_eq!(v["local"], "10.0.0.1:4000");
        assert!((v["time"].as_f64().unwrap() - 1_764_636_000.125).abs() < 1e-6);
        let v = mp_event(
            wall,
            Some(3),
            &MpEvent::Announced {
                id: 2,
                addr: "10.0.2.2".parse().unwrap(),
                port: Some(8080),
            },
            Some((l, r)),
            &name,
        );
        assert_eq!(v["event"], "announced");
        assert_eq!(v["port"], 8080);
        assert_eq!(v["remote"], "10.0.1.2:80");
        let p = path_event(
            wall,
            &PathEvent {
                at: braid_proto::Instant::from_nanos(0),
                change: PathChange::Backup(true),
                tun: "bt1".into(),
                local: "10.0.1.1".parse().unwrap(),
            },
        );
        assert_eq!(p["event"], "path_priority");
        assert_eq!(p["backup"], true);
        assert_eq!(p["tun"], "bt1");
    }
}
