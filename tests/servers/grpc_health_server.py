"""The standard gRPC health service (grpcio + grpcio-health-checking from PyPI), plaintext
on PORT and TLS on TLS_PORT. Services: "" SERVING, "down" NOT_SERVING, "unknown" UNKNOWN;
any other name is NOT_FOUND, as the reference implementation answers.

    grpc_health_server.py PORT TLS_PORT CERT_PEM KEY_PEM
"""
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    port, tls_port, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
    servicer.set("unknown", health_pb2.HealthCheckResponse.UNKNOWN)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    with open(cert, "rb") as c, open(key, "rb") as k:
        creds = grpc.ssl_server_credentials([(k.read(), c.read())])
    server.add_secure_port(f"127.0.0.1:{tls_port}", creds)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
