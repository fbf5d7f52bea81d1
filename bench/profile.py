"""`bench/profile`: instruction counts of the proxy's hot paths under callgrind.

Instruction counts are repeatable on a busy machine, unlike wall-clock time. The proxy runs under
`valgrind --tool=callgrind` with collection off; after a warm-up, collection is switched on for
exactly N sequential requests of one kind (non-streaming chat on a SigV4 account and on an apiKey
account, streaming chat, Titan embeddings), dumped, and summarised as instructions per request
plus the functions that cost the most (self cost).

    bench/profile                # 2,000 requests per path
    bench/profile 500            # fewer
    bench/profile 500 --no-build # the release binaries already built
    PROFILE_ONLY=stream bench/profile 500 --no-build  # only the paths whose label contains "stream"
    PROFILE_KEEP=/tmp/out bench/profile 500           # also keep the callgrind dumps there
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the benchmark's helpers: build, manifests, servers)


def requests(url: str, body: dict, n: int, stream: bool) -> None:
    """Sends `n` requests one after another on one keep-alive connection."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {run.CALLER_KEY}", "Content-Type": "application/json"}
    for _ in range(n):
        conn.request("POST", u.path, data, headers)
        resp = conn.getresponse()
        text = resp.read()
        if resp.status != 200 or (stream and not text.endswith(b"data: [DONE]\n\n")):
            raise SystemExit(f"unexpected answer {resp.status}: {text[:300]!r}")
    conn.close()


def wait_ready(url: str, timeout: float = 120) -> None:
    """Waits until the proxy (slow under valgrind) has loaded its configuration."""
    u = urlparse(url)
    deadline = time.time() + timeout
    while True:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        conn.request("GET", "/readyz")
        status = conn.getresponse().status
        conn.close()
        if status == 200:
            return
        if time.time() > deadline:
            raise SystemExit(f"the proxy is not ready after {timeout:.0f} s (/readyz {status})")
        time.sleep(0.5)


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def summarise(out_file: Path, n: int, top: int) -> tuple[float, str]:
    total = 0
    for line in out_file.read_text(errors="replace").splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            total = int(line.split()[1])
    annotate = subprocess.run(
        ["callgrind_annotate", "--inclusive=no", f"--threshold=99", str(out_file)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in annotate.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)", line)
        if m and "PROGRAM TOTALS" not in line:
            ir = int(m.group(1).replace(",", ""))
            name = re.sub(r"^\S*:", "", m.group(3).strip())[:150]
            rows.append(f"| {ir / n:,.0f} | {m.group(2)}% | `{name}` |")
        if len(rows) >= top:
            break
    return total / n, "\n".join(["| Ir / request | share | function (self cost) |", "|---|---|---|", *rows])


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--no-build"]
    n = int(args[0]) if args else 2000
    top = int(os.environ.get("PROFILE_TOP", "25"))
    if "--no-build" in sys.argv:
        bin_dir = Path(os.environ.get("CARGO_TARGET_DIR", run.ROOT / "target")) / "release"
    else:
        bin_dir = run.build()
    with tempfile.TemporaryDirectory(prefix="bgw-profile-") as tmp:
        workdir = Path(tmp)
        quiet = dict(os.environ, RUST_LOG="warn")
        sim = run.start_server(
            "sim",
            [str(bin_dir / "bedrock-sim"), "--listen", "127.0.0.1:0", "--no-record"],
            re.compile(r"listening on (http://\S+)"),
            workdir,
            quiet,
        )
        procs = [sim]
        try:
            manifests = run.write_manifests(workdir, sim.url)
            cg = workdir / "callgrind.out"
            proxy = run.start_server(
                "proxy",
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--instr-atstart=no",
                    f"--callgrind-out-file={cg}.%p",
                    str(bin_dir / "bedrock-gateway-proxy"),
                    "--manifests",
                    str(manifests),
                    "--listen",
                    "127.0.0.1:0",
                ],
                re.compile(r"listening on (http://\S+)"),
                workdir,
            )
            procs.append(proxy)
            wait_ready(proxy.url)
            chat = f"{proxy.url}/v1/chat/completions"
            base = {"model": "demo/nova-lite", "messages": [{"role": "user", "content": run.PROMPT}], "max_tokens": 64}
            paths = [
                ("non-streaming chat (SigV4)", chat, base, False),
                ("non-streaming chat (apiKey)", chat, base | {"model": "bench-key/nova-lite-key"}, False),
                (
                    "streaming chat (SigV4)",
                    chat,
                    base | {"stream": True, "stream_options": {"include_usage": True}},
                    True,
                ),
                (
                    "embeddings (Titan v2, 1024 floats, SigV4)",
                    f"{proxy.url}/v1/embeddings",
                    {"model": "demo/titan-embed", "input": run.PROMPT},
                    False,
                ),
            ]
            only = os.environ.get("PROFILE_ONLY")
            report = []
            for label, url, body, stream in paths:
                if only and only not in label:
                    continue
                run.log(f"profiling {label}: {n} requests ...")
                requests(url, body, 50, stream)
                control(proxy.pid, "--instr=on")
                control(proxy.pid, "--zero")
                started = time.time()
                requests(url, body, n, stream)
                control(proxy.pid, "--dump")
                control(proxy.pid, "--instr=off")
                time.sleep(1)
                dumps = sorted(workdir.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
                per_req, table = summarise(dumps[-1], n, top)
                if keep := os.environ.get("PROFILE_KEEP"):
                    # For callgrind_annotate --inclusive=yes or kcachegrind afterwards.
                    slug = re.sub(r"\W+", "-", label).strip("-")
                    shutil.copy(dumps[-1], Path(keep) / f"callgrind.{slug}")
                report.append(
                    f"### {label}\n\n{per_req:,.0f} instructions per request in the proxy process "
                    f"({n} requests, {time.time() - started:.0f} s under callgrind).\n\n{table}\n"
                )
            print("\n".join(report))
        finally:
            for proc in reversed(procs):
                proc.stop()


if __name__ == "__main__":
    main()
