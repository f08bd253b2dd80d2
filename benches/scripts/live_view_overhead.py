#!/usr/bin/env python3
"""What the live view costs the engine: the same generated venue fed over TCP to
`margin-engine serve` without `--http`, with `--http` and no reader, and with `--http` while a
poller reads /metrics, /api/summary and /api/risk every 100 ms. Runs alternate; prints inputs/s of each run and the
medians. Never a CI gate (timing).

    python3 benches/scripts/live_view_overhead.py [accounts] [events] [runs]
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(ROOT, "target", "release", "margin-engine")


def start(data, http):
    args = [ENGINE, "serve", "--listen", "127.0.0.1:0", "--stats-secs", "0", "--data", data]
    if http:
        args += ["--http", "127.0.0.1:0"]
    p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    tcp = web = None
    while tcp is None:
        line = p.stderr.readline()
        if not line:
            raise SystemExit("serve stopped early")
        m = re.search(r"live view on http://([^/]+)/", line)
        if m:
            web = m.group(1)
        m = re.search(r"serving on (\S+)", line)
        if m:
            tcp = m.group(1)
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, tcp, web


def poll(web, stop, counts):
    while not stop.is_set():
        for path in ("/metrics", "/api/summary", "/api/risk?limit=20"):
            try:
                urllib.request.urlopen(f"http://{web}{path}", timeout=5).read()
                counts[0] += 1
            except Exception:
                counts[1] += 1
        time.sleep(0.1)


def run(lines, mode):
    data = tempfile.mkdtemp()
    p, tcp, web = start(data, mode != "without")
    stop, counts = threading.Event(), [0, 0]
    poller = threading.Thread(target=poll, args=(web, stop, counts)) if mode == "polled" else None
    if poller:
        poller.start()
    s = socket.create_connection(tcp.split(":"))
    t0 = time.monotonic()
    sender = threading.Thread(target=lambda: (s.sendall(lines), s.shutdown(socket.SHUT_WR)))
    sender.start()
    while s.recv(1 << 20):
        pass
    elapsed = time.monotonic() - t0
    sender.join()
    stop.set()
    if poller:
        poller.join()
    p.terminate()
    p.wait()
    shutil.rmtree(data)
    return elapsed, counts


def main():
    accounts = sys.argv[1] if len(sys.argv) > 1 else "10000"
    events = sys.argv[2] if len(sys.argv) > 2 else "200000"
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    lines = subprocess.run(
        [ENGINE, "generate", "--accounts", accounts, "--events", events, "--markets", "12"],
        check=True, capture_output=True).stdout
    n = lines.count(b"\n")
    modes = {"without": "without --http", "idle": "--http, not polled", "polled": "--http polled every 100 ms"}
    rates = {m: [] for m in modes}
    for i in range(runs):
        for mode in modes:
            elapsed, counts = run(lines, mode)
            rates[mode].append(n / elapsed)
            extra = f", {counts[0]} HTTP answers, {counts[1]} failed" if mode == "polled" else ""
            print(f"run {i + 1} {modes[mode]}: {n} inputs in {elapsed:.2f} s = {n / elapsed:,.0f} inputs/s{extra}")
    med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
    for mode in modes:
        print(f"median {modes[mode]}: {med[mode]:,.0f} inputs/s ({(med[mode] / med['without'] - 1) * 100:+.1f} %)")


main()
