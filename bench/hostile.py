"""Hardening figures: `check` time against probe count (must be linear), and a daemon's
CPU, RSS and wall time for one probe run against a target that sends one endless SSE line,
beside a healthy probe.

    python3 bench/hostile.py
"""
import os
import socket
import subprocess
import tempfile
import threading
import time

from common import BIN, Proc, build, cpu_seconds, free_port, http_text, machine, memory_kb, report, wait_http


def probes_file(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(f'[[probe]]\nname = "p{i}"\nkind = "http"\nurl = "http://127.0.0.1:9/x{i}"\n'
                    f'every = "60s"\n[probe.budget]\nttfb = "{100 + i % 50}ms"\n\n')


def check_scaling(tmp):
    rows = []
    for n in (8_000, 16_000, 30_000, 60_000):
        path = os.path.join(tmp, f"p{n}.toml")
        probes_file(path, n)
        best = None
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run([BIN, "check", "-c", path], check=True, stdout=subprocess.DEVNULL)
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        rows.append((n, best))
    return rows


def endless_line_server(stop):
    """Answers every connection with SSE headers and then one `data:` line that never ends."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    chunk = b"x" * 65536

    def serve(conn):
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\ndata: ")
            while not stop.is_set():
                conn.sendall(chunk)
        except OSError:
            pass
        finally:
            conn.close()

    def loop():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
        srv.close()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def hostile_daemon(tmp):
    stop = threading.Event()
    port = endless_line_server(stop)
    listen = free_port()
    demo = free_port()
    cfg = os.path.join(tmp, "hostile.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{listen}"\n[demo]\nlisten = "127.0.0.1:{demo}"\n\n'
                f'[[probe]]\nname = "endless-line"\nkind = "assistant"\nformat = "sse"\n'
                f'url = "http://127.0.0.1:{port}/"\nevery = "2s"\ntimeout = "1s"\n\n'
                f'[[probe]]\nname = "healthy"\nkind = "http"\nurl = "http://127.0.0.1:{demo}/delay/20"\n'
                f'every = "500ms"\ntimeout = "400ms"\n')
    seconds = 20
    with Proc([BIN, "run", "-c", cfg], env={**os.environ, "SLOPROBE_LOG": "error"}) as d:
        wait_http(f"http://127.0.0.1:{listen}/readyz")
        cpu0 = cpu_seconds(d.pid)
        time.sleep(seconds)
        cpu1 = cpu_seconds(d.pid)
        mem = memory_kb(d.pid)
        metrics = http_text(f"http://127.0.0.1:{listen}/metrics")
    stop.set()

    def val(name, *must):
        total = 0.0
        for line in metrics.splitlines():
            if line.startswith(name) and all(m in line for m in must):
                total += float(line.rsplit(" ", 1)[1])
        return total

    runs = val("probe_runs_total", 'probe_name="endless-line"')
    protocol = val("probe_runs_total", 'probe_name="endless-line"', 'error_type="protocol_error"')
    healthy_ok = val("probe_runs_total", 'probe_name="healthy"', 'outcome="success"')
    healthy_all = val("probe_runs_total", 'probe_name="healthy"')
    dur_sum = val("probe_duration_seconds_sum", 'probe_name="endless-line"')
    return {
        "seconds": seconds,
        "runs": runs,
        "protocol_error": protocol,
        "mean_run_s": dur_sum / runs if runs else float("nan"),
        "cpu_s": cpu1 - cpu0,
        "rss_mb": mem["VmRSS"] / 1024,
        "hwm_mb": mem["VmHWM"] / 1024,
        "healthy_ok": healthy_ok,
        "healthy_all": healthy_all,
    }


def main():
    build()
    with tempfile.TemporaryDirectory() as tmp:
        scaling = check_scaling(tmp)
        hostile = hostile_daemon(tmp)
    lines = [
        f"Machine: {machine()}. `python3 bench/hostile.py`.",
        "",
        "`sloprobe check` on one file of N http probes (best of 3):",
        "",
        "| probes | time | per 1,000 probes |",
        "|---:|---:|---:|",
    ]
    for n, t in scaling:
        lines.append(f"| {n:,} | {t:.2f} s | {t / n * 1000 * 1000:.1f} ms |")
    h = hostile
    lines += [
        "",
        f"A daemon for {h['seconds']} s with one assistant probe (every 2 s, timeout 1 s) against a "
        "target that sends one endless `data:` line as fast as loopback allows, beside a healthy "
        "http probe every 500 ms:",
        "",
        f"- endless-line runs: {h['runs']:.0f}, all `protocol_error`: {h['protocol_error']:.0f}; "
        f"mean run {h['mean_run_s'] * 1000:.1f} ms (cut at `max_event` = 1 MiB)",
        f"- daemon CPU {h['cpu_s']:.2f} s over {h['seconds']} s; RSS {h['rss_mb']:.1f} MB, peak {h['hwm_mb']:.1f} MB",
        f"- healthy probe: {h['healthy_ok']:.0f} of {h['healthy_all']:.0f} runs succeeded",
    ]
    report("hostile", "\n".join(lines), {"check": scaling, "hostile": hostile})


if __name__ == "__main__":
    main()
