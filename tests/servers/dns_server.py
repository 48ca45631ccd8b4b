"""A DNS server on dnslib (PyPI) for the dns probe tests: UDP and TCP on one port, DNS over
TLS on a second. The zone:

    ok.test    A 127.0.0.1, AAAA ::1 (TTL 300)
    nx.test    NXDOMAIN
    fail.test  SERVFAIL
    big.test   60 A records: over UDP (512-byte answers, as without EDNS) it comes truncated
    slow.test  A 127.0.0.1 after 1.5 s
    test       SOA with serial 2026120601

    dns_server.py PORT DOT_PORT CERT_PEM KEY_PEM
"""
import socketserver
import ssl
import struct
import sys
import threading
import time

from dnslib import AAAA, QTYPE, RCODE, RR, SOA, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

SERIAL = 2026120601


class Zone(BaseResolver):
    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        if name == "nx.test":
            reply.header.rcode = RCODE.NXDOMAIN
        elif name == "fail.test":
            reply.header.rcode = RCODE.SERVFAIL
        elif name in ("ok.test", "slow.test"):
            if name == "slow.test":
                time.sleep(1.5)
            if qtype in ("A", "ANY"):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=300))
            if qtype in ("AAAA", "ANY"):
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA("::1"), ttl=300))
        elif name == "big.test":
            for i in range(60):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(f"10.0.{i // 250}.{i % 250 + 1}"), ttl=60))
        elif name == "test" and qtype in ("SOA", "ANY"):
            reply.add_answer(RR("test.", QTYPE.SOA, ttl=3600,
                                rdata=SOA("ns.test.", "admin.test.", (SERIAL, 3600, 600, 86400, 60))))
        else:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class ClassicUdp(DNSHandler):
    # Answers over 512 bytes come truncated over UDP, as a server does for a client
    # without EDNS.
    udplen = 512


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def serve_dot(port, cert, key, zone):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            try:
                conn = ctx.wrap_socket(self.request, server_side=True)
                while True:
                    head = recv_exact(conn, 2)
                    if head is None:
                        return
                    query = recv_exact(conn, struct.unpack("!H", head)[0])
                    if query is None:
                        return
                    answer = zone.resolve(DNSRecord.parse(query), None).pack()
                    conn.sendall(struct.pack("!H", len(answer)) + answer)
            except (OSError, ssl.SSLError):
                return

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    port, dot_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    zone = Zone()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
    serve_dot(dot_port, cert, key, zone)
    DNSServer(zone, port=port, address="127.0.0.1", handler=ClassicUdp, logger=quiet).start_thread()
    # The TCP listener last: tests wait for it to accept.
    DNSServer(zone, port=port, address="127.0.0.1", tcp=True, logger=quiet).start_thread()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
