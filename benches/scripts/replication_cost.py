#!/usr/bin/env python3
"""What replication costs: the same generated venue fed over TCP to `margin-engine serve`
without and with `--replicate` (a local `nats-server -js`, file storage), twice each:
unpaced (sustained inputs/s) and paced at a fixed offered rate (the serve's own per-second
end-to-end latency p50/p99: from the line's arrival to its outputs' release). Runs alternate;
prints each run and the medians. Never a CI gate (timing).

    python3 benches/scripts/replication_cost.py [accounts] [events] [rate_per_s] [runs]
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(ROOT, "target", "release", "margin-engine")
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_nats(store):
    port = free_port()
    p = subprocess.Popen([NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "Server is ready" in line:
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, f"nats://127.0.0.1:{port}"


def start(data, nats_url):
    args = [ENGINE, "serve", "--listen", "127.0.0.1:0", "--stats-secs", "1", "--json-stats",
            "--data", data]
    if nats_url:
        args += ["--replicate", nats_url, "--stream", "bench"]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    tcp = None
    while tcp is None:
        line = p.stderr.readline()
        if not line:
            raise SystemExit("serve stopped early")
        m = re.search(r"serving on (\S+)", line)
        if m:
            tcp = m.group(1)
    stats = []
    def read():
        for line in p.stderr:
            if line.startswith("{"):
                stats.append(json.loads(line))
    threading.Thread(target=read, daemon=True).start()
    return p, tcp, stats


def feed(tcp, lines, rate):
    s = socket.create_connection(tcp.split(":"))
    chunks = lines.split(b"\n")[:-1]
    def send():
        if rate == 0:
            s.sendall(b"\n".join(chunks) + b"\n")
        else:
            per_tick = max(1, rate // 200)
            t0 = time.monotonic()
            for i in range(0, len(chunks), per_tick):
                due = t0 + i / rate
                while time.monotonic() < due:
                    time.sleep(0.0005)
                s.sendall(b"\n".join(chunks[i:i + per_tick]) + b"\n")
        s.shutdown(socket.SHUT_WR)
    t0 = time.monotonic()
    sender = threading.Thread(target=send)
    sender.start()
    while s.recv(1 << 20):
        pass
    sender.join()
    return time.monotonic() - t0


def run(lines, replicate, rate):
    tmp = tempfile.mkdtemp()
    nats = None
    url = None
    if replicate:
        nats, url = start_nats(os.path.join(tmp, "nats"))
    p, tcp, stats = start(os.path.join(tmp, "data"), url)
    elapsed = feed(tcp, lines, rate)
    time.sleep(1.2)
    p.terminate()
    p.wait()
    if nats:
        nats.terminate()
        nats.wait()
    shutil.rmtree(tmp)
    busy = [s for s in stats if s["events_per_s"] > 0]
    steady = busy[1:-1] or busy
    med = lambda xs: sorted(xs)[len(xs) // 2] if xs else 0
    return elapsed, med([s["latency_ns_p50"] for s in steady]), med([s["latency_ns_p99"] for s in steady])


def main():
    accounts = sys.argv[1] if len(sys.argv) > 1 else "1000"
    events = sys.argv[2] if len(sys.argv) > 2 else "100000"
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    lines = subprocess.run([ENGINE, "generate", "--accounts", accounts, "--events", events],
                           check=True, capture_output=True).stdout
    n = lines.count(b"\n")
    res = {}
    for i in range(runs):
        for replicate in (False, True):
            for r in (0, rate):
                elapsed, p50, p99 = run(lines, replicate, r)
                key = (replicate, r)
                res.setdefault(key, []).append((n / elapsed, p50, p99))
                what = "with --replicate" if replicate else "without        "
                load = "unpaced" if r == 0 else f"offered {r}/s"
                print(f"run {i + 1} {what} {load}: {n} inputs in {elapsed:.2f} s = {n / elapsed:,.0f} inputs/s; "
                      f"e2e p50 {p50 / 1000:.0f} us p99 {p99 / 1000:.0f} us")
    for (replicate, r), xs in sorted(res.items()):
        med = lambda k: sorted(x[k] for x in xs)[len(xs) // 2]
        what = "with --replicate" if replicate else "without"
        load = "unpaced" if r == 0 else f"offered {r}/s"
        print(f"median {what}, {load}: {med(0):,.0f} inputs/s, e2e p50 {med(1) / 1000:.0f} us, p99 {med(2) / 1000:.0f} us")


main()
