/* The floor under an http run's CPU: what the socket work of a run alone costs on the
 * same schedule, with nothing else (no HTTP library, no runtime, no metrics).
 *
 *   floor PORT PROBES RUNS_FILE
 *
 * PROBES "probes" run every 1 + i % 10 seconds (first runs spread over the interval),
 * one thread, blocking sockets, sleeping until the next due run. A run is what
 * sloprobe's http probe does in the kernel (strace): socket, TCP_NODELAY, connect,
 * one write of a GET with `Connection: close`, one read, shutdown, close. The number of
 * runs is written to RUNS_FILE about once a second. bench/overhead.py measures its CPU
 * per run beside sloprobe and blackbox_exporter in the same run.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void sleep_until(double due) {
    struct timespec t;
    t.tv_sec = (time_t)due;
    t.tv_nsec = (long)((due - (double)t.tv_sec) * 1e9);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
}

static int run(const struct sockaddr_in *to, const char *req, size_t len) {
    char buf[8192];
    int one = 1, ok = 0;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) return 0;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s, (const struct sockaddr *)to, sizeof *to) == 0 && write(s, req, len) == (ssize_t)len)
        ok = read(s, buf, sizeof buf) > 12 && memcmp(buf + 9, "200", 3) == 0;
    shutdown(s, SHUT_WR);
    close(s);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: floor PORT PROBES RUNS_FILE\n");
        return 2;
    }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    if (n < 1 || port < 1) return 2;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    char req[256];
    int len = snprintf(req, sizeof req,
                       "GET / HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nuser-agent: floor\r\naccept: */*\r\n"
                       "connection: close\r\n\r\n", port);
    double *due = malloc(sizeof(double) * n), start = now(), written = start;
    if (!due) return 1;
    for (int i = 0; i < n; i++) due[i] = start + (1 + i % 10) * ((i * 7919) % 1000) / 1000.0;
    unsigned long runs = 0, failed = 0;
    for (;;) {
        int next = 0; /* a linear scan of the due times: ~1 µs a run at 1,000 */
        for (int i = 1; i < n; i++)
            if (due[i] < due[next]) next = i;
        sleep_until(due[next]);
        if (run(&to, req, (size_t)len)) runs++; else failed++;
        due[next] += 1 + next % 10;
        double t = now();
        if (t - written >= 1.0) {
            FILE *f = fopen(argv[3], "w");
            if (f) {
                fprintf(f, "%lu %lu\n", runs, failed);
                fclose(f);
            }
            written = t;
        }
    }
}
