#!/usr/bin/env python3
"""A SYN flood from spoofed sources, for braid's SYN-cookie interop test and benchmark (root).

  syn_flood.py HOST PORT [--rate N] [--seconds S] [--net 203.0.113.0/24]

Sends SYNs to HOST:PORT at about N a second for S seconds through a raw socket (IP_HDRINCL)
with source addresses drawn from --net and random source ports and sequence numbers. Half carry
MP_CAPABLE v1 (the options a Linux MPTCP client sends: MSS, SACK permitted, timestamps, window
scale, MP_CAPABLE), half the same options without it. Nobody answers the SYN/ACKs: the sources do
not exist. At the end one JSON line: {"sent": n, "seconds": s}.
"""

import argparse
import ipaddress
import json
import random
import socket
import struct
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src, dst, sport, dport, seq, tsval, mptcp):
    opts = struct.pack("!BBH", 2, 4, 1460)  # MSS
    opts += struct.pack("!BB", 4, 2)  # SACK permitted
    opts += struct.pack("!BBII", 8, 10, tsval, 0)  # timestamps
    opts += struct.pack("!BBBB", 1, 3, 3, 7)  # NOP, window scale 7
    if mptcp:
        # MP_CAPABLE, subtype 0, version 1; flags: A=0 (no checksums), H=1 (HMAC-SHA256)
        opts += struct.pack("!BBBB", 30, 4, 0x01, 0x01)
    while len(opts) % 4:
        opts += b"\x01"
    off = (20 + len(opts)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, off << 4, 0x02, 64240, 0, 0) + opts
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    c = csum(pseudo + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), random.getrandbits(16), 0x4000,
                     64, 6, 0, src, dst)
    return ip + tcp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--net", default="203.0.113.0/24")
    a = ap.parse_args()
    net = ipaddress.ip_network(a.net)
    hosts = [h.packed for h in net.hosts()]
    dst = socket.inet_aton(a.host)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    t0 = time.monotonic()
    sent = 0
    while True:
        now = time.monotonic() - t0
        if now >= a.seconds:
            break
        due = int(now * a.rate)
        while sent < due:
            p = syn(random.choice(hosts), dst, random.randint(1024, 65535), a.port,
                    random.getrandbits(32), random.getrandbits(32), sent % 2 == 0)
            try:
                s.sendto(p, (a.host, 0))
            except OSError:
                pass
            sent += 1
        time.sleep(0.001)
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - t0, 3)}), flush=True)


if __name__ == "__main__":
    main()
