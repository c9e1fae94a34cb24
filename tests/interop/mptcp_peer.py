#!/usr/bin/env python3
"""The Linux side of braid's MPTCP interop tests and benchmark: a kernel MPTCP (or plain TCP)
server or client that sends N bytes and receives until EOF at the same time.

  mptcp_peer.py server --port P [--bind ADDR] [--send N] [--tcp] [--fast]
  mptcp_peer.py client --connect HOST --port P [--bind ADDR] [--send N] [--tcp] [--fast]

The server prints "ready" once it listens and serves one connection. Both sides send N bytes
(default 0) in a thread, then shut down their sending half (with nothing to send: once the
peer's FIN arrived), while the main thread reads until the peer's FIN. At the end one JSON line: rx_bytes, rx_sha256, tx_bytes, tx_sha256, seconds
(established until both directions finished), rx_mbps, tx_mbps, mptcp (the socket is IPPROTO_MPTCP and
did not fall back to TCP), extra_subflows (the most extra subflows the kernel reported while the
transfer ran; MPTCP_INFO), token. --fast sends one random block over and over and skips the
hashes (for benchmarks). The client retries connecting for 30 s (the peer may not be up yet).
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
# struct mptcp_info (linux/mptcp.h): 6 x u8, u32 flags, u32 token, ...
MPTCP_INFO_FMT = "=6BII"
MPTCP_INFO_FLAG_FALLBACK = 1
BLOCK = 1 << 20


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def new_socket(fam, plain_tcp):
    proto = 0 if plain_tcp else IPPROTO_MPTCP
    return socket.socket(fam, socket.SOCK_STREAM, proto)


def mptcp_state(sock):
    """(is MPTCP and not fallen back, extra subflows, token), from MPTCP_INFO."""
    try:
        raw = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, 64)
    except OSError:
        return (False, 0, 0)
    if len(raw) < struct.calcsize(MPTCP_INFO_FMT):
        return (False, 0, 0)
    f = struct.unpack_from(MPTCP_INFO_FMT, raw)
    subflows, flags, token = f[0], f[6], f[7]
    return (not flags & MPTCP_INFO_FLAG_FALLBACK, subflows, token)


def transfer(conn, send, fast):
    """Sends `send` bytes in a thread while receiving until EOF; returns the report."""
    conn.settimeout(120)
    tx = {"bytes": 0, "sha": hashlib.sha256(), "error": None}

    rx_done = threading.Event()

    def sender():
        try:
            if send == 0:
                # A pure sink closes only after the peer's FIN: a DATA_FIN at once would make
                # the kernel refuse the peer's MP_JOINs (the connection is no longer open).
                rx_done.wait()
            block = os.urandom(BLOCK) if fast else None
            while tx["bytes"] < send:
                k = min(BLOCK, send - tx["bytes"])
                b = block[:k] if fast else os.urandom(k)
                conn.sendall(b)
                if not fast:
                    tx["sha"].update(b)
                tx["bytes"] += k
            conn.shutdown(socket.SHUT_WR)
        except OSError as e:
            tx["error"] = repr(e)

    t0 = time.monotonic()
    th = threading.Thread(target=sender, daemon=True)
    th.start()
    rx_sha = hashlib.sha256()
    rx = 0
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    mp, extra, token = mptcp_state(conn)
    next_sample = 0
    while True:
        k = conn.recv_into(buf)
        if not k:
            break
        if not fast:
            rx_sha.update(view[:k])
        rx += k
        if rx >= next_sample:
            m, e, tok = mptcp_state(conn)
            mp, extra, token = m, max(extra, e), tok or token
            next_sample = rx + BLOCK
    rx_done.set()
    th.join(150)
    m, e, tok = mptcp_state(conn)
    mp, extra, token = m and mp, max(extra, e), tok or token
    dt = time.monotonic() - t0
    conn.close()
    if tx["error"] is not None:
        raise SystemExit(f"sending failed: {tx['error']}")
    if th.is_alive():
        raise SystemExit("sending did not finish")
    return {
        "rx_bytes": rx,
        "rx_sha256": None if fast else rx_sha.hexdigest(),
        "tx_bytes": tx["bytes"],
        "tx_sha256": None if fast else tx["sha"].hexdigest(),
        "seconds": dt,
        "rx_mbps": rx * 8 / dt / 1e6 if dt > 0 else 0.0,
        "tx_mbps": tx["bytes"] * 8 / dt / 1e6 if dt > 0 else 0.0,
        "mptcp": mp,
        "extra_subflows": extra,
        "token": token,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["server", "client"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bind", default=None)
    ap.add_argument("--connect", default=None)
    ap.add_argument("--send", type=int, default=0)
    ap.add_argument("--tcp", action="store_true", help="plain TCP instead of MPTCP")
    ap.add_argument("--fast", action="store_true", help="no hashes, one repeated block")
    ap.add_argument("--v6", action="store_true", help="server: listen on IPv6")
    a = ap.parse_args()

    if a.role == "server":
        fam = socket.AF_INET6 if a.v6 or (a.bind and ":" in a.bind) else socket.AF_INET
        s = new_socket(fam, a.tcp)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bind = a.bind or ("::" if fam == socket.AF_INET6 else "0.0.0.0")
        s.bind((bind, a.port))
        s.listen(1)
        print("ready", flush=True)
        conn, _ = s.accept()
        # The listener stays open: the kernel needs it for MP_JOIN SYNs of this connection.
        listener = s
    else:
        if not a.connect:
            ap.error("client needs --connect HOST")
        deadline = time.time() + 30
        while True:
            conn = new_socket(family_of(a.connect), a.tcp)
            if a.bind:
                conn.bind((a.bind, 0))
            conn.settimeout(5)
            try:
                conn.connect((a.connect, a.port))
                break
            except OSError:
                conn.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        listener = None
    report = transfer(conn, a.send, a.fast)
    if listener is not None:
        listener.close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    sys.exit(main())
