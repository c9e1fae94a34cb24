#!/usr/bin/env python3
"""Multiqueue TUN steering probe (docs/scaling.md): which queue gets the kernel's packets of a
flow, before and after userspace writes a packet of that flow on a queue of its choice, and after
an idle pause. Needs root; makes the device bmq0 (10.99.0.1/24) for its lifetime.

    python3 scripts/tun-mq-probe.py [QUEUES [FLOWS [PAUSE_S]]]     (defaults 2 64 4)
"""
import fcntl, os, socket, struct, select, subprocess, sys, time, errno

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI, IFF_MULTI_QUEUE = 0x0001, 0x1000, 0x0100
NAME = b"bmq0"
NQ = int(sys.argv[1]) if len(sys.argv) > 1 else 2
FLOWS = int(sys.argv[2]) if len(sys.argv) > 2 else 64

def open_q():
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", NAME, IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE))
    return fd

qs = [open_q() for _ in range(NQ)]
sh = lambda c: subprocess.run(c, shell=True, check=True)
sh("ip addr add 10.99.0.1/24 dev bmq0 && ip link set bmq0 up")
time.sleep(0.2)

def seg(sp, dp, seq, ack, flags, payload=b"", ipid=0):
    src, dst = socket.inet_aton("10.99.0.2"), socket.inet_aton("10.99.0.1")
    tcp = struct.pack("!HHIIBBHHH", dp, sp, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ipid, 0, 64, 6, 0, src, dst)
    return ip[:10] + struct.pack("!H", csum(ip)) + ip[12:] + tcp

def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF

def drain(timeout=0.3):
    """Every TCP packet the queues hand out within `timeout`: (queue, sport, dport, seq, flags)."""
    got = []
    end = time.time() + timeout
    while time.time() < end:
        r, _, _ = select.select(qs, [], [], 0.05)
        for fd in r:
            while True:
                try: p = os.read(fd, 65536)
                except BlockingIOError: break
                if len(p) >= 40 and p[9] == 6:
                    ihl = (p[0] & 15) * 4
                    sp, dp, seq = struct.unpack("!HHI", p[ihl:ihl+8])
                    flags = p[ihl+13]
                    got.append((qs.index(fd), sp, dp, seq, flags))
    return got

socks = []
for i in range(FLOWS):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("10.99.0.2", 5000 + i))
    except BlockingIOError:
        pass
    socks.append(s)
syns = [g for g in drain() if g[4] & 0x02]
first = {}
for q, sp, dp, seq, _ in syns:
    first.setdefault((sp, dp), (q, seq))
per_q = [sum(1 for v in first.values() if v[0] == q) for q in range(NQ)]
print(f"SYNs of {len(first)} flows over {NQ} queues (kernel's own choice): {per_q}")

# Answer every flow with a valid SYN-ACK written on queue (flow index % NQ), then see where the
# kernel's ACK for that flow comes out.
want = {}
for n, ((sp, dp), (q, seq)) in enumerate(sorted(first.items())):
    wq = n % NQ
    want[(sp, dp)] = wq
    os.write(qs[wq], seg(sp, dp, 1000, seq + 1, 0x12, ipid=n))
acks = [g for g in drain() if not g[4] & 0x02]
hit = sum(1 for q, sp, dp, _, _ in acks if want.get((sp, dp)) == q)
print(f"kernel ACKs after braid answered each flow on a queue of its choice: {len(acks)}, "
      f"on the queue that answered: {hit}")

# Second round: a 10-byte data segment per flow on the same queue; the kernel ACKs it.
for (sp, dp), (q, seq) in sorted(first.items()):
    os.write(qs[want[(sp, dp)]], seg(sp, dp, 1001, seq + 1, 0x18, b"x" * 10))
acks2 = [g for g in drain() if not g[4] & 0x02]
hit2 = sum(1 for q, sp, dp, _, _ in acks2 if want.get((sp, dp)) == q)
print(f"kernel ACKs of a second packet written on the same queue: {len(acks2)}, on that queue: {hit2}")

# Third round after the flow entries may have aged out (the kernel's TUN_FLOW_EXPIRE is 3 s).
time.sleep(float(sys.argv[3]) if len(sys.argv) > 3 else 4.0)
for (sp, dp), (q, seq) in sorted(first.items()):
    os.write(qs[want[(sp, dp)]], seg(sp, dp, 1011, seq + 1, 0x18, b"y" * 10))
acks3 = [g for g in drain() if not g[4] & 0x02]
hit3 = sum(1 for q, sp, dp, _, _ in acks3 if want.get((sp, dp)) == q)
print(f"after an idle pause, kernel ACKs of a packet on the same queue: {len(acks3)}, on that queue: {hit3}")
