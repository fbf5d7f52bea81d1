"""The benchmark behind `bench/run`: everything on loopback, against one bedrock-sim.

Builds the release binaries, starts bedrock-sim and bedrock-gateway-proxy (manifests generated
from examples/quickstart with the endpoints pointed at the sim: the SigV4 `demo` account and an
apiKey `bench-key` account), optionally LiteLLM's proxy on the same sim, measures each scenario
with bgw-loadgen (bench/src) and hey, prints one table and writes bench/RESULTS.md between the
`bench:begin` / `bench:end` markers (the profile notes around them are kept).

CPU seconds and peak RSS are those of the process under test (the sim for the direct rows, the
proxy or LiteLLM otherwise), read from /proc/<pid>/stat and VmHWM (reset before each scenario
through /proc/<pid>/clear_refs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SIM_KEY_ID = "AKIASIMULATOR0000001"
SIM_SECRET = "bedrock-sim-secret-access-key-0000000000"
SIM_BEARER = "bedrock-sim-api-key"
CALLER_KEY = "sk-bgw-quickstart"
LITELLM_KEY = "sk-bench-litellm"
NOVA = "amazon.nova-lite-v1:0"
NOVA_PATH = "amazon.nova-lite-v1%3A0"
EMBED = "amazon.titan-embed-text-v2:0"
PROMPT = "Say hello to the benchmark in a few words"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# A second account, authenticated with a Bedrock API key (bearer), next to the quick-start SigV4 one.
BENCH_MANIFESTS = """\
apiVersion: v1
kind: Secret
metadata: {{name: bench-bedrock-key, namespace: ai-gateway}}
type: Opaque
stringData: {{apiKey: {bearer}}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {{name: bench-key, namespace: ai-gateway}}
spec:
  defaultRegion: us-east-1
  auth: {{apiKey: {{secretRef: {{name: bench-bedrock-key}}}}}}
  endpoints: {{runtime: "{sim}", control: "{sim}"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: nova-lite-key, namespace: ai-gateway}}
spec: {{accountRef: bench-key, modelId: "{nova}"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: titan-embed, namespace: ai-gateway}}
spec: {{accountRef: demo, modelId: "{embed}", kind: embedding}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {{name: bench, namespace: ai-gateway}}
spec:
  subjects: [{{team: quickstart}}]
  models: ["bench-key/*"]
"""

LITELLM_CONFIG = """\
model_list:
  - model_name: nova-lite
    litellm_params:
      model: bedrock/converse/{nova}
      aws_access_key_id: {key_id}
      aws_secret_access_key: {secret}
      aws_region_name: us-east-1
      aws_bedrock_runtime_endpoint: "{sim}"
litellm_settings:
  drop_params: true
general_settings:
  # LiteLLM refuses to start without one.
  master_key: {master_key}
"""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and /proc


@dataclass
class Proc:
    """A started server: its process, URL and log file."""

    name: str
    popen: subprocess.Popen
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_mib(pid: int) -> float:
    return status_kib(pid, "VmRSS") / 1024


def hwm_mib(pid: int) -> float:
    return status_kib(pid, "VmHWM") / 1024


def reset_hwm(pid: int) -> None:
    """Restarts VmHWM from the current RSS, so each scenario reports its own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def start_server(name: str, cmd: list[str], ready: re.Pattern, workdir: Path, env=None) -> Proc:
    """Starts `cmd`, waits for `ready` on stdout and returns the URL it captured."""
    log_path = workdir / f"{name}.log"
    popen = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=log_path.open("w"),
        text=True,
        env=env,
        start_new_session=True,
    )
    deadline = time.time() + 60
    assert popen.stdout is not None
    while time.time() < deadline:
        line = popen.stdout.readline()
        if not line:
            break
        if m := ready.search(line):
            # Keep draining stdout so the server never blocks on a full pipe.
            threading.Thread(target=popen.stdout.read, daemon=True).start()
            return Proc(name, popen, m.group(1), log_path)
    popen.kill()
    raise SystemExit(f"{name} did not start; see {log_path}:\n{log_path.read_text()[-2000:]}")


def http_post(url: str, body: dict, headers: dict[str, str], timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    for k, v in headers.items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e).encode()


# ---------------------------------------------------------------- load generators


@dataclass
class Row:
    """One line of the results table."""

    name: str
    stats: dict
    cpu_per_1k: float | None
    peak_rss: float | None
    base: "Row | None" = None
    note: str = ""
    extra: dict = field(default_factory=dict)


class Runner:
    """Holds the options and the built binaries; runs one measurement at a time."""

    def __init__(self, args: argparse.Namespace, bin_dir: Path, workdir: Path):
        self.args = args
        self.loadgen = bin_dir / "bgw-loadgen"
        self.workdir = workdir
        self.n = 0

    def body_file(self, body: dict) -> Path:
        self.n += 1
        path = self.workdir / f"body-{self.n}.json"
        path.write_text(json.dumps(body))
        return path

    def loadgen_cmd(self, url: str, headers: dict[str, str], body: dict, **opts) -> list[str]:
        cmd = [str(self.loadgen), "--url", url, "--body-file", str(self.body_file(body))]
        for k, v in headers.items():
            cmd += ["--header", f"{k}: {v}"]
        for k, v in opts.items():
            cmd += [f"--{k.replace('_', '-')}", str(v)]
        return cmd

    def run_loadgen(self, url, headers, body, **opts) -> dict:
        opts.setdefault("warmup", self.args.warmup)
        opts.setdefault("duration", self.args.duration)
        opts.setdefault("concurrency", self.args.concurrency)
        out = subprocess.run(
            self.loadgen_cmd(url, headers, body, **opts), capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise SystemExit(f"bgw-loadgen failed: {out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def measure(self, name: str, proc: Proc, url: str, headers, body, base=None, **opts) -> Row:
        """Runs one scenario and attributes CPU and peak RSS to `proc`."""
        log(f"{name} ...")
        reset_hwm(proc.pid)
        cpu0 = cpu_seconds(proc.pid)
        stats = self.run_loadgen(url, headers, body, **opts)
        cpu = cpu_seconds(proc.pid) - cpu0
        # The warm-up requests burned CPU too: count them at the measured rate.
        total_requests = stats["requests"] * (1 + self.args.warmup / stats["seconds"])
        per_1k = cpu / total_requests * 1000 if total_requests else None
        if stats["errors"]:
            log(f"  {stats['errors']} errors, first: {stats['first_error']}")
        return Row(name, stats, per_1k, hwm_mib(proc.pid), base)

    def hey(self, name: str, proc: Proc, url: str, headers: dict[str, str], body: dict) -> Row | None:
        """The same closed loop through hey, as a cross-check of bgw-loadgen's throughput."""
        hey = shutil.which("hey")
        if not hey:
            return None
        log(f"{name} ...")
        cmd = [hey, "-z", f"{self.args.duration}s", "-c", str(self.args.concurrency), "-m", "POST"]
        cmd += ["-T", "application/json", "-D", str(self.body_file(body))]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        reset_hwm(proc.pid)
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(cmd + [url], capture_output=True, text=True, check=False).stdout
        cpu = cpu_seconds(proc.pid) - cpu0
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        pct = {p: float(s) * 1e6 for p, s in re.findall(r"(\d+)% in ([\d.]+) secs", out)}
        ok = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
        stats = {
            "rps": rps,
            "p50_us": pct.get("50", 0.0),
            "p99_us": pct.get("99", 0.0),
            "requests": ok,
            "errors": 0,
            "seconds": self.args.duration,
        }
        return Row(name, stats, cpu / ok * 1000 if ok else None, hwm_mib(proc.pid), note="hey; 100 us steps")


# ---------------------------------------------------------------- setup


def ensure_hey() -> None:
    if shutil.which("hey"):
        return
    log("installing hey (Debian) ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    ok = subprocess.run(["apt-get", "install", "-y", "-q", "hey"], env=env, capture_output=True).returncode == 0
    if not ok:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "hey"], env=env, capture_output=True)
    if not shutil.which("hey"):
        log("hey could not be installed: the hey cross-check row is skipped")


def ensure_litellm() -> Path | None:
    venv = BENCH / ".venv-litellm"
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    log("installing litellm[proxy] into bench/.venv-litellm (takes a few minutes once) ...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], check=False)
    return exe if r.returncode == 0 and exe.exists() else None


def build() -> Path:
    log("building release binaries ...")
    cmd = ["cargo", "build", "--release", "--quiet", "-p", "bedrock-sim", "-p", "bedrock-gateway-proxy"]
    subprocess.run(cmd + ["-p", "bgw-bench"], cwd=ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release"


def write_manifests(workdir: Path, sim_url: str) -> Path:
    manifests = workdir / "manifests"
    manifests.mkdir()
    for f in (ROOT / "examples" / "quickstart").glob("*.yaml"):
        (manifests / f.name).write_text(f.read_text().replace("http://127.0.0.1:9090", sim_url))
    (manifests / "bench.yaml").write_text(
        BENCH_MANIFESTS.format(bearer=SIM_BEARER, sim=sim_url, nova=NOVA, embed=EMBED)
    )
    return manifests


def raise_fd_limit() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = status_kib_meminfo()
    return f"{os.cpu_count()} cores, {model}, {mem:.1f} GiB RAM, Linux {platform.release()}"


def status_kib_meminfo() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


# ---------------------------------------------------------------- report


def fmt_us(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us / 1000:.2f} ms" if abs(us) >= 1000 else f"{us:.0f} us"


def table(rows: list[Row]) -> str:
    head = "| scenario | req/s | p50 | p99 | added p50 | added p99 | vs direct | CPU s / 1k req | peak RSS | note |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        s = r.stats
        added50 = s["p50_us"] - r.base.stats["p50_us"] if r.base else None
        added99 = s["p99_us"] - r.base.stats["p99_us"] if r.base else None
        ratio = "-"
        if r.base and r.base.stats["rps"]:
            x = s["rps"] / r.base.stats["rps"]
            ratio = f"{x:.2f}x" if x >= 0.1 else f"{x:.4f}x"
        cpu = f"{r.cpu_per_1k:.3f}" if r.cpu_per_1k is not None else "-"
        rss = f"{r.peak_rss:.1f} MiB" if r.peak_rss is not None else "-"
        note = r.note + (f" {s['errors']} errors" if s.get("errors") else "")
        lines.append(
            f"| {r.name} | {s['rps']:.0f} | {fmt_us(s['p50_us'])} | {fmt_us(s['p99_us'])} | "
            f"{fmt_us(added50) if r.base else '-'} | {fmt_us(added99) if r.base else '-'} | {ratio} | "
            f"{cpu} | {rss} | {note.strip()} |"
        )
    return "\n".join(lines)


def ttfb_line(name: str, direct: Row, proxy: Row) -> str:
    """Direct first frame vs proxy first SSE chunk."""
    d50, d99 = direct.stats["ttfb_p50_us"], direct.stats["ttfb_p99_us"]
    p50, p99 = proxy.stats["ttfb_p50_us"], proxy.stats["ttfb_p99_us"]
    return (
        f"| {name}: direct ConverseStream (first frame) / proxy SSE (first chunk) | {fmt_us(d50)} / {fmt_us(p50)} "
        f"| {fmt_us(d99)} / {fmt_us(p99)} | {fmt_us(p50 - d50)} | {fmt_us(p99 - d99)} |"
    )


def pacing_note(rows: list[Row]) -> str:
    """The fixed-rate harness error: scheduled start to the request being written, per row."""
    lags = ", ".join(
        f"{r.name} p50 {fmt_us(r.stats['lag_p50_us'])} / p99 {fmt_us(r.stats['lag_p99_us'])}"
        for r in rows
        if "lag_p50_us" in r.stats
    )
    return (
        "Pacing lag (scheduled start to request written, included in the latencies above; starts "
        f"paced by bgw-loadgen's own thread, not tokio's 1 ms timer): {lags or 'not reported'}."
    )


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def write_results(path: Path, section: str) -> None:
    block = f"{BEGIN}\n{section}\n{END}"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


# ---------------------------------------------------------------- the run


def main() -> None:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: a few seconds per scenario")
    p.add_argument("--duration", type=float, help="seconds measured per scenario (default 10, quick 2)")
    p.add_argument("--warmup", type=float, help="seconds of warm-up per scenario (default 2, quick 0.5)")
    p.add_argument("--concurrency", type=int, default=32, help="connections of the closed-loop scenarios")
    p.add_argument("--rate", type=float, default=1000, help="requests per second of the fixed-rate scenario")
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams held open")
    p.add_argument("--hold", type=float, help="seconds the streams are held (default 5, quick 1)")
    p.add_argument("--soak", type=float, help="soak seconds (default 60, quick 5)")
    p.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    p.add_argument(
        "--only",
        choices=["hold", "rate"],
        help="run one scenario and print it, writing nothing: hold = the concurrent streams on a fresh proxy; "
        "rate = the fixed-rate rows with the proxy's context switches and CPU per request (perf stat), for A/B",
    )
    p.add_argument("--no-build", action="store_true", help="use the binaries already built")
    p.add_argument("--output", type=Path, default=BENCH / "RESULTS.md", help="results file")
    p.add_argument(
        "--proxy-env", action="append", default=[], metavar="NAME=VALUE", help="extra environment of the proxy only"
    )
    args = p.parse_args()
    quick = args.quick
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if quick else 2.0)
    args.hold = args.hold or (1.0 if quick else 5.0)
    args.soak = args.soak or (5.0 if quick else 60.0)

    raise_fd_limit()
    if args.only != "rate":
        ensure_hey()
    litellm_exe = None if args.no_litellm or args.only else ensure_litellm()
    bin_dir = ROOT / "target" / "release" if args.no_build else build()
    if args.no_build and "CARGO_TARGET_DIR" in os.environ:
        bin_dir = Path(os.environ["CARGO_TARGET_DIR"]) / "release"

    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="bgw-bench-") as tmp:
        workdir = Path(tmp)
        try:
            run(args, bin_dir, workdir, procs, litellm_exe)
        finally:
            for proc in reversed(procs):
                proc.stop()


def run(args, bin_dir: Path, workdir: Path, procs: list[Proc], litellm_exe: Path | None) -> None:
    quiet = dict(os.environ, RUST_LOG="warn")
    sim = start_server(
        "sim",
        [str(bin_dir / "bedrock-sim"), "--listen", "127.0.0.1:0", "--no-record"],
        re.compile(r"listening on (http://\S+)"),
        workdir,
        quiet,
    )
    procs.append(sim)
    manifests = write_manifests(workdir, sim.url)

    proxy_env = dict(os.environ, **dict(kv.split("=", 1) for kv in args.proxy_env))

    def start_proxy() -> Proc:
        proxy = start_server(
            "proxy",
            [str(bin_dir / "bedrock-gateway-proxy"), "--manifests", str(manifests), "--listen", "127.0.0.1:0"],
            re.compile(r"listening on (http://\S+)"),
            workdir,
            proxy_env,
        )
        procs.append(proxy)
        return proxy

    proxy = start_proxy()
    r = Runner(args, bin_dir, workdir)
    if args.only == "hold":
        body = {"model": "demo/nova-lite", "messages": [{"role": "user", "content": f"Hold [[sim:gap=2000]] {PROMPT}"}]}
        body |= {"max_tokens": 64, "stream": True, "stream_options": {"include_usage": True}}
        held = hold_streams(r, proxy, f"{proxy.url}/v1/chat/completions", {"Authorization": f"Bearer {CALLER_KEY}"}, body)
        per_stream = (held["open_rss"] - held["before"]) * 1024 / max(1, held["opened"])
        print(json.dumps(held | {"per_stream_kib": round(per_stream, 1)}))
        return

    direct_hdr = {"Authorization": f"Bearer {SIM_BEARER}"}
    caller_hdr = {"Authorization": f"Bearer {CALLER_KEY}"}
    converse = {"messages": [{"role": "user", "content": [{"text": PROMPT}]}], "inferenceConfig": {"maxTokens": 64}}

    def chat(model: str, stream: bool = False, text: str = PROMPT) -> dict:
        body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 64}
        if stream:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        return body

    direct_url = f"{sim.url}/model/{NOVA_PATH}/converse"
    direct_stream_url = f"{sim.url}/model/{NOVA_PATH}/converse-stream"
    chat_url = f"{proxy.url}/v1/chat/completions"
    for url, hdr, body in ((direct_url, direct_hdr, converse), (chat_url, caller_hdr, chat("demo/nova-lite"))):
        status, text = http_post(url, body, hdr)
        if status != 200:
            raise SystemExit(f"smoke request to {url} answered {status}: {text[:500]!r}")

    if args.only == "rate":
        rate_only(r, sim, proxy, (direct_url, direct_hdr, converse), (chat_url, caller_hdr, chat("demo/nova-lite")))
        return

    rows: list[Row] = []
    notes: list[str] = []
    direct = r.measure("direct to sim (Converse, bearer)", sim, direct_url, direct_hdr, converse)
    rows.append(direct)
    rows.append(r.measure("proxy, SigV4 account", proxy, chat_url, caller_hdr, chat("demo/nova-lite"), base=direct))
    rows.append(
        r.measure("proxy, apiKey account", proxy, chat_url, caller_hdr, chat("bench-key/nova-lite-key"), base=direct)
    )
    hey_row = r.hey("proxy, SigV4 account (hey)", proxy, chat_url, caller_hdr, chat("demo/nova-lite"))
    if hey_row:
        rows.append(hey_row)
    else:
        notes.append("hey is not installed: its cross-check row is missing.")

    # Streams: time to the first frame (event stream) / first chunk (SSE).
    direct_stream = r.measure("direct ConverseStream", sim, direct_stream_url, direct_hdr, converse)
    proxy_stream = r.measure(
        "proxy stream, SigV4", proxy, chat_url, caller_hdr, chat("demo/nova-lite", stream=True), base=direct_stream
    )
    rows += [direct_stream, proxy_stream]
    # Time to first byte without queueing: one stream at a time.
    ttfb_direct = r.measure("direct ConverseStream, 1 connection", sim, direct_stream_url, direct_hdr, converse, concurrency=1)
    ttfb_proxy = r.measure(
        "proxy stream, 1 connection", proxy, chat_url, caller_hdr, chat("demo/nova-lite", stream=True), base=ttfb_direct, concurrency=1
    )

    # Embeddings, when this build serves them.
    embed_body = {"model": "demo/titan-embed", "input": PROMPT}
    status, text = http_post(f"{proxy.url}/v1/embeddings", embed_body, caller_hdr)
    if status == 200:
        direct_embed = None
        direct_embed_url = f"{sim.url}/model/{EMBED.replace(':', '%3A')}/invoke"
        if http_post(direct_embed_url, {"inputText": PROMPT}, direct_hdr)[0] == 200:
            direct_embed = r.measure("direct InvokeModel (Titan embed)", sim, direct_embed_url, direct_hdr, {"inputText": PROMPT})
            rows.append(direct_embed)
        rows.append(
            r.measure("proxy embeddings", proxy, f"{proxy.url}/v1/embeddings", caller_hdr, embed_body, base=direct_embed)
        )
    else:
        notes.append(f"Embeddings skipped: POST /v1/embeddings answered {status} in this build.")
        log(notes[-1])

    # LiteLLM on the same simulator.
    litellm_row = None
    if litellm_exe:
        port = free_port()
        cfg = workdir / "litellm.yaml"
        cfg.write_text(LITELLM_CONFIG.format(
                nova=NOVA, key_id=SIM_KEY_ID, secret=SIM_SECRET, sim=sim.url, master_key=LITELLM_KEY
            ))
        env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
        litellm = start_litellm(litellm_exe, cfg, port, workdir, env)
        if litellm:
            procs.append(litellm)
            url = f"{litellm.url}/v1/chat/completions"
            litellm_hdr = {"Authorization": f"Bearer {LITELLM_KEY}"}
            status, text = http_post(url, chat("nova-lite"), litellm_hdr)
            if status == 200:
                litellm_row = r.measure(
                    "LiteLLM proxy (1 worker)", litellm, url, litellm_hdr, chat("nova-lite"), base=direct
                )
                rows.append(litellm_row)
                rows.append(
                    r.measure(
                        "LiteLLM stream", litellm, url, litellm_hdr, chat("nova-lite", stream=True), base=direct_stream
                    )
                )
            else:
                notes.append(f"LiteLLM answered {status}: {text[:300]!r}; its rows are missing.")
            litellm.stop()
        else:
            notes.append("LiteLLM did not start (see its log); its rows are missing.")
    else:
        notes.append("LiteLLM skipped (--no-litellm or the install failed).")

    # Added latency at a fixed rate.
    log(f"fixed rate {args.rate:.0f} rps ...")
    rate_opts = {"rate": args.rate, "concurrency": 1000}
    rate_direct = r.measure(f"direct at {args.rate:.0f} rps", sim, direct_url, direct_hdr, converse, **rate_opts)
    rate_proxy = r.measure(
        f"proxy at {args.rate:.0f} rps", proxy, chat_url, caller_hdr, chat("demo/nova-lite"), base=rate_direct, **rate_opts
    )

    # Concurrent streams held open by the sim's gap directive, on a fresh proxy: what the
    # earlier scenarios left in the allocator does not count against the streams.
    proxy.stop()
    proxy = start_proxy()
    chat_url = f"{proxy.url}/v1/chat/completions"
    held = hold_streams(r, proxy, chat_url, caller_hdr, chat("demo/nova-lite", True, f"Hold [[sim:gap=2000]] {PROMPT}"))

    # Soak: RSS sampled each second while the proxy serves non-stop.
    soak = soak_run(r, proxy, chat_url, caller_hdr, chat("demo/nova-lite"))

    # ------------------------------------------------------------ report
    proxy_row = rows[1]
    added50 = rate_proxy.stats["p50_us"] - rate_direct.stats["p50_us"]
    added99 = rate_proxy.stats["p99_us"] - rate_direct.stats["p99_us"]
    ttft_over = ttfb_proxy.stats["ttfb_p50_us"] - ttfb_direct.stats["ttfb_p50_us"]
    ttft_over99 = ttfb_proxy.stats["ttfb_p99_us"] - ttfb_direct.stats["ttfb_p99_us"]
    growth = soak["end"] - soak["after_warmup"]
    goals = [
        ("throughput >= 0.7x direct", f"{proxy_row.stats['rps'] / direct.stats['rps']:.2f}x", proxy_row.stats["rps"] >= 0.7 * direct.stats["rps"]),
        (f"added p50 < 100 us at {args.rate:.0f} rps", fmt_us(added50), added50 < 100),
        (f"added p99 < 1 ms at {args.rate:.0f} rps", fmt_us(added99), added99 < 1000),
        ("TTFT overhead < 1 ms (p50, 1 connection)", f"{fmt_us(ttft_over)} (p99 {fmt_us(ttft_over99)})", ttft_over < 1000),
        (
            ">= 20x LiteLLM throughput",
            f"{proxy_row.stats['rps'] / litellm_row.stats['rps']:.1f}x" if litellm_row else "-",
            proxy_row.stats["rps"] >= 20 * litellm_row.stats["rps"] if litellm_row else None,
        ),
        (
            f"peak RSS < 50 MiB with {args.streams} streams",
            f"{held['peak']:.1f} MiB ({held['opened']} open)",
            held["peak"] < 50 and held["opened"] == args.streams,
        ),
        (f"no RSS growth over a {args.soak:.0f} s soak", f"{growth:+.1f} MiB", growth <= 1.0),
    ]

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick (smoke run: numbers are indicative only)" if args.quick else "full"
    out = [
        f"Run: {now}, mode {mode}. Machine: {machine()}.",
        f"Load: bgw-loadgen closed loop, {args.concurrency} connections, {args.duration:.0f} s measured after "
        f"{args.warmup:.1f} s warm-up per scenario; load generator, sim and proxy share the machine.",
        "",
        table(rows),
        "",
        "Added latency = p50/p99 minus the direct row's; CPU and peak RSS are the measured process's "
        "(sim for direct rows, the proxy, or LiteLLM). Stream rows: p50/p99 is the whole stream, and "
        "time to first byte is below.",
        "",
        "| time to first byte | TTFB p50 | TTFB p99 | overhead p50 | overhead p99 |",
        "|---|---|---|---|---|",
        *[ttfb_line(name, d, p) for name, d, p in (
            (f"{args.concurrency} connections", direct_stream, proxy_stream),
            ("1 connection", ttfb_direct, ttfb_proxy),
        )],
        "",
        f"Fixed rate {args.rate:.0f} rps (open loop, latency from the scheduled start):",
        "",
        table([rate_direct, rate_proxy]),
        "",
        pacing_note([rate_direct, rate_proxy]),
        "",
        f"{args.streams} concurrent streams through a freshly started proxy ([[sim:gap=2000]]): {held['opened']} opened in "
        f"{held['seconds']:.1f} s, {held['failed']} failed; proxy RSS {held['before']:.1f} MiB before, "
        f"{held['open_rss']:.1f} MiB with all open, peak {held['peak']:.1f} MiB.",
        "",
        f"Soak {args.soak:.0f} s right after the streams ({soak['requests']} requests, {soak['rps']:.0f} req/s): proxy RSS "
        f"{soak['before']:.1f} MiB before, {soak['after_warmup']:.1f} MiB after the first tenth, "
        f"{soak['end']:.1f} MiB at the end (max {soak['max']:.1f} MiB).",
        "",
        "| goal | measured | |",
        "|---|---|---|",
        *[f"| {g} | {m} | {verdict(ok)} |" for g, m, ok in goals],
    ]
    if notes:
        out += ["", *[f"- {n}" for n in notes]]
    section = "\n".join(out)
    print(section)
    write_results(args.output, section)
    log(f"written to {args.output}")


def rate_only(r: Runner, sim: Proc, proxy: Proc, direct: tuple, through_proxy: tuple) -> None:
    """The fixed-rate rows alone, with the proxy's scheduler counts per request (perf stat)."""
    rate = r.args.rate
    opts = {"rate": rate, "concurrency": 1000}
    rate_direct = r.measure(f"direct at {rate:.0f} rps", sim, *direct, **opts)
    perf = None
    if shutil.which("perf"):
        events = "task-clock,context-switches,cpu-migrations"
        perf = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-e", events, "-p", str(proxy.pid)], stderr=subprocess.PIPE, text=True
        )
    rate_proxy = r.measure(f"proxy at {rate:.0f} rps", proxy, *through_proxy, base=rate_direct, **opts)
    lines = [table([rate_direct, rate_proxy]), "", pacing_note([rate_direct, rate_proxy])]
    if perf:
        perf.send_signal(signal.SIGINT)
        counts = {}
        for line in perf.communicate()[1].splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[0].replace(".", "", 1).isdigit():
                counts[fields[2]] = float(fields[0])
        s = rate_proxy.stats
        requests = s["requests"] * (1 + r.args.warmup / s["seconds"])
        if requests and counts:
            per = {k: v / requests for k, v in counts.items()}
            lines += [
                "",
                f"Proxy per request (perf stat over warm-up and measurement, {requests:.0f} requests): "
                f"task-clock {per.get('task-clock', 0) * 1000:.0f} us, "
                f"context switches {per.get('context-switches', 0):.2f}, "
                f"CPU migrations {per.get('cpu-migrations', 0):.3f}.",
            ]
    print("\n".join(lines))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_litellm(exe: Path, cfg: Path, port: int, workdir: Path, env: dict) -> Proc | None:
    log("starting LiteLLM ...")
    log_path = workdir / "litellm.log"
    popen = subprocess.Popen(
        [str(exe), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline and popen.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health/liveliness", timeout=2) as resp:
                if resp.status == 200:
                    return Proc("litellm", popen, url, log_path)
        except (urllib.error.URLError, OSError):
            time.sleep(1)
    log(f"LiteLLM did not start:\n{log_path.read_text()[-2000:]}")
    popen.kill()
    return None


def hold_streams(r: Runner, proxy: Proc, url: str, headers, body) -> dict:
    log(f"holding {r.args.streams} streams ...")
    time.sleep(1)
    reset_hwm(proxy.pid)
    before = rss_mib(proxy.pid)
    cmd = r.loadgen_cmd(url, headers, body, concurrency=r.args.streams, hold=r.args.hold, duration=60)
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert gen.stdout is not None
    opened = json.loads(gen.stdout.readline())
    open_rss = rss_mib(proxy.pid)
    final = json.loads(gen.stdout.read().strip().splitlines()[-1])
    gen.wait()
    peak = hwm_mib(proxy.pid)
    if final.get("errors"):
        log(f"  {final['errors']} stream errors, first: {final['first_error']}")
    return {
        "before": before,
        "open_rss": open_rss,
        "peak": peak,
        "opened": opened["opened"],
        "failed": opened["failed"],
        "seconds": opened["seconds"],
    }


def soak_run(r: Runner, proxy: Proc, url: str, headers, body) -> dict:
    log(f"soak {r.args.soak:.0f} s ...")
    time.sleep(1)
    before = rss_mib(proxy.pid)
    samples: list[float] = []
    cmd = r.loadgen_cmd(url, headers, body, concurrency=r.args.concurrency, duration=r.args.soak, warmup=0)
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    while gen.poll() is None:
        samples.append(rss_mib(proxy.pid))
        time.sleep(min(1.0, r.args.soak / 20))
    stats = json.loads(gen.stdout.read().strip().splitlines()[-1])
    time.sleep(0.5)
    end = rss_mib(proxy.pid)
    tenth = samples[max(0, len(samples) // 10 - 1)] if samples else before
    return {
        "before": before,
        "after_warmup": tenth,
        "end": end,
        "max": max(samples + [end]),
        "requests": stats["requests"],
        "rps": stats["rps"],
    }


if __name__ == "__main__":
    main()
