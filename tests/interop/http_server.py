#!/usr/bin/env python3
"""A plain HTTP/1.0 file server for braid's application interop tests (proxy, forward):
python's own http.server (threads, one per request) with a deep listen backlog, so that a
hundred clients connecting at once are not held back by SYN drops.

  http_server.py --bind ADDR --port P --dir DIR

Run it under `mptcpize run` to make it a kernel MPTCP server. Prints "ready" once it listens.
"""

import argparse
import functools
import http.server
import sys


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    handler = functools.partial(Quiet, directory=a.dir)
    srv = Server((a.bind, a.port), handler)
    print("ready", flush=True)
    sys.stdout.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
