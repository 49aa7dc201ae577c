#!/usr/bin/env python3
"""NC Connect load benchmark: the broker started as a user would, measured from 127.0.0.1.

For each server (gunicorn through ``nc-connect serve``, granian on ``wsgi:app``)
and storage backend (SQLite, or PostgreSQL + Redis), the script:

1. builds a temporary configuration directory: a copy of ``config/`` whose
   ``broker.yaml`` points at its own database and keys, keys made with
   ``nc-connect keys generate``, a bench account made with ``nc-connect users add``
   (password on standard input);
2. starts the server as a subprocess and waits until discovery answers;
3. drives a bounded load (``--concurrency`` threads, ``--duration`` seconds per
   scenario, a request cap) and prints, per scenario, operations per second,
   p50/p99 latency, the peak RSS (and PSS) summed over the server's process tree,
   and the server CPU time per operation.

Scenarios: discovery GET; token endpoint code exchange (codes made beforehand by
SSO authorize requests, consumed well within their 60 s lifetime); a complete
SSO flow (authorize with a session cookie -> code -> token -> userinfo); the
login form POST (password check, argon2id).  The argon2id cost with the
parameters of providers/local.py is measured in-process first.

Linux only (/proc).  Run from the repository's virtualenv:

    .venv/bin/python bench/run.py --server both --backend sqlite
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
EMAIL = "bench@example.nc"
PASSWORD = "bench password 0123456789"
REQUEST_CAP = 200_000          # per scenario, whatever the duration
TIMEOUT = 15                   # seconds, per HTTP request
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def tool(name: str) -> str:
    candidate = BIN / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        sys.exit(f"{name} not found next to {sys.executable} nor on PATH")
    return found


# -- the server's process tree, from /proc ---------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def memory(pids: list[int]) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in bytes."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                rss += int(fh.read().split()[1]) * PAGE
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            pass
    return rss, pss


def machine_busy() -> float:
    """CPU seconds spent by the whole machine (all cores, all processes) since boot."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK  # minus idle and iowait


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL server processes serving connections to ``database`` (from their process titles)."""
    out = []
    marker = f" {database} ".encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    title = fh.read()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and marker in title:
                out.append(int(entry))
    return out


class Sampler(threading.Thread):
    """Samples the server tree's memory every ``interval`` s; ``window()`` returns and resets the peaks."""

    def __init__(self, root: int, database: str | None = None, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.root, self.database, self.interval = root, database, interval
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.peak_rss = self.peak_pss = 0
        self.pids = tree(root)

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def sample(self) -> None:
        pids = tree(self.root)
        rss, pss = memory(pids)
        with self.lock:
            self.pids = pids
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def window(self) -> tuple[int, int]:
        self.sample()
        with self.lock:
            peaks = self.peak_rss, self.peak_pss
            self.peak_rss = self.peak_pss = 0
        return peaks

    def cpu(self) -> float:
        with self.lock:
            pids = list(self.pids)
        return cpu_seconds(pids)

    def db_cpu(self) -> float:
        return cpu_seconds(postgres_backends(self.database)) if self.database else 0.0


# -- the load generator ----------------------------------------------------------

@dataclass
class Result:
    name: str
    unit: str
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    peak_rss: int = 0
    peak_pss: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    other_cpu: float = 0.0
    db_cpu: float | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))] * 1000

    def line(self) -> str:
        mib = 1024 * 1024
        per_op = self.server_cpu * 1000 / self.ok if self.ok else float("nan")
        db = f" + PostgreSQL {self.db_cpu * 1000 / self.ok:.1f}" if self.db_cpu is not None and self.ok else ""
        err = f"  ERRORS {self.errors} (first: {self.first_error})" if self.errors else ""
        return (f"  {self.name:<26} {self.rate:8.1f} {self.unit + '/s':<8} p50 {self.pct(0.50):7.1f} ms"
                f"  p99 {self.pct(0.99):7.1f} ms  peak RSS {self.peak_rss / mib:6.0f} MiB"
                f" (PSS {self.peak_pss / mib:4.0f})  server CPU {per_op:5.1f}{db} ms/{self.unit}"
                f"  [{self.ok} in {self.elapsed:.1f} s; CPU of load gen {self.client_cpu * 100:.0f}%,"
                f" of other processes {self.other_cpu * 100:.0f}%]{err}")


class Exhausted(Exception):
    pass


class Failed(Exception):
    pass


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def location(self) -> str:
        return self.headers.get("Location", "")


class Http:
    """One kept-alive HTTP/1.1 connection to the broker (http.client: a light client, so the
    load generator takes less of the CPU it shares with the server).  No cookie jar: browsers'
    cookies are carried by :class:`Browser`."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, *, params: dict | None = None, form: dict | None = None,
                headers: dict | None = None) -> Reply:
        if path.startswith("http"):
            parts = urlsplit(path)
            path = parts.path + ("?" + parts.query if parts.query else "")
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params)
        headers = dict(headers or {})
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            try:
                self.conn.request(method, path, body, headers)
                response = self.conn.getresponse()
                reply = Reply(response.status, response.headers, response.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: the request never ran
                raise
            except Exception:
                self.close()
                raise
            if response.will_close:
                self.close()
            return reply
        raise AssertionError("unreachable")

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict, **kw) -> Reply:
        return self.request("POST", path, form=form, **kw)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def run_load(name: str, unit: str, op: Callable[[Http, Any], None], base: str, *, concurrency: int,
             duration: float, items: Iterator | None = None, per_thread: list | None = None,
             sampler: Sampler | None = None, cap: int = REQUEST_CAP) -> Result:
    """``concurrency`` threads call ``op(http, item)`` until ``duration`` elapses, ``cap``
    operations are done or ``items`` runs out.  ``op`` raises on failure.  ``per_thread[i]``
    (if given) is thread i's fixed item instead of one from ``items``."""
    result = Result(name, unit)
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)
    started = [0.0]
    ends: list[float] = []
    done = [0]

    def next_item(index: int) -> Any:
        with lock:
            if done[0] >= cap:
                raise Exhausted
            done[0] += 1
            if per_thread is not None:
                return per_thread[index]
            if items is None:
                return None
            try:
                return next(items)
            except StopIteration:
                raise Exhausted from None

    def worker(index: int) -> None:
        conn = Http(base)
        latencies, ok, errors, first = [], 0, 0, ""
        barrier.wait()
        deadline = started[0] + duration
        while time.perf_counter() < deadline:
            try:
                item = next_item(index)
            except Exhausted:
                break
            t0 = time.perf_counter()
            try:
                op(conn, item)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors += 1
                first = first or f"{type(exc).__name__}: {exc}"[:200]
                continue
            latencies.append(time.perf_counter() - t0)
            ok += 1
        with lock:
            ends.append(time.perf_counter())
            result.ok += ok
            result.errors += errors
            result.latencies.extend(latencies)
            result.first_error = result.first_error or first
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    if sampler:
        sampler.window()
        cpu0, db0 = sampler.cpu(), sampler.db_cpu()
    busy0 = machine_busy()
    client0 = time.process_time()
    started[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join(duration + 2 * TIMEOUT + 5)
    result.elapsed = (max(ends) if ends else time.perf_counter()) - started[0]
    client = time.process_time() - client0
    busy = machine_busy() - busy0
    if result.elapsed:
        result.client_cpu = client / result.elapsed
    if sampler:
        result.server_cpu = sampler.cpu() - cpu0
        if sampler.database:
            result.db_cpu = sampler.db_cpu() - db0
            busy -= result.db_cpu
        result.peak_rss, result.peak_pss = sampler.window()
        if result.elapsed:
            result.other_cpu = max(0.0, busy - client - result.server_cpu) / result.elapsed
    return result


# -- the OIDC client side --------------------------------------------------------

COOKIE = re.compile(r"ncc_session=([^;]+)")


@dataclass
class RP:
    base: str
    client_id: str
    secret: str
    redirect_uri: str

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()

    def authorize_params(self) -> tuple[dict[str, str], str]:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                "scope": "openid profile email", "state": secrets.token_urlsafe(16),
                "nonce": secrets.token_urlsafe(16), "code_challenge": challenge,
                "code_challenge_method": "S256"}, verifier


class Browser:
    """One citizen's browser: its session cookie, usable over any load thread's connection."""

    def __init__(self, rp: RP) -> None:
        self.rp = rp
        self.cookie = ""

    def _headers(self) -> dict[str, str]:
        return {"Cookie": f"ncc_session={self.cookie}"} if self.cookie else {}

    def _keep(self, reply: Reply) -> Reply:
        for header in reply.headers.get_all("Set-Cookie") or []:
            m = COOKIE.match(header)
            if m:
                self.cookie = m.group(1)
        return reply

    def get(self, conn: Http, path: str, **kw) -> Reply:
        return self._keep(conn.get(path, headers=self._headers(), **kw))

    def post(self, conn: Http, path: str, form: dict) -> Reply:
        return self._keep(conn.post(path, form, headers=self._headers()))

    def login_form(self, conn: Http) -> tuple[str, str]:
        """authorize (no session) -> login page: (csrf_token, rid)."""
        params, _ = self.rp.authorize_params()
        r = self.get(conn, "/authorize", params=params)
        if r.status != 303 or "/login" not in r.location():
            raise Failed(f"authorize: {r.status} {r.location()[:80]}")
        page = self.get(conn, r.location())
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        rid = re.search(r'name="rid" value="([^"]*)"', page.text)
        if page.status != 200 or not csrf or not rid:
            raise Failed(f"login page: {page.status}")
        return csrf.group(1), rid.group(1)

    def submit(self, conn: Http, csrf: str, rid: str) -> str:
        r = self.post(conn, "/login", {"csrf_token": csrf, "rid": rid, "email": EMAIL, "password": PASSWORD})
        if r.status != 303 or "/authorize/resume" not in r.location():
            raise Failed(f"login POST: {r.status}")
        return r.location()

    def sign_in(self, conn: Http) -> None:
        csrf, rid = self.login_form(conn)
        r = self.get(conn, self.submit(conn, csrf, rid))
        if r.status != 303 or not r.location().startswith(self.rp.redirect_uri):
            raise Failed(f"resume: {r.status}")

    def code(self, conn: Http) -> tuple[str, str]:
        """SSO: authorize with the session cookie, straight back with a code."""
        params, verifier = self.rp.authorize_params()
        r = self.get(conn, "/authorize", params=params)
        if r.status != 303 or not r.location().startswith(self.rp.redirect_uri):
            raise Failed(f"SSO authorize: {r.status} {r.location()[:80]}")
        query = parse_qs(urlsplit(r.location()).query)
        if query.get("state") != [params["state"]] or "code" not in query:
            raise Failed("SSO authorize: no code or wrong state")
        return query["code"][0], verifier


def exchange(rp: RP, conn: Http, code: str, verifier: str) -> str:
    r = conn.post("/token", {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
                             "code_verifier": verifier}, headers={"Authorization": rp.basic()})
    if r.status != 200:
        raise Failed(f"token: {r.status} {r.text[:120]}")
    body = r.json()
    if "id_token" not in body:
        raise Failed("token: no id_token")
    return body["access_token"]


def userinfo(conn: Http, access_token: str) -> None:
    r = conn.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    if r.status != 200 or "sub" not in r.json():
        raise Failed(f"userinfo: {r.status}")


# -- argon2id ------------------------------------------------------------------

def argon2_cost() -> list[str]:
    """CPU cost of one hash and one verify (process time, steady on a busy machine), then the
    verifies per second all cores manage together (wall clock)."""
    sys.path.insert(0, str(ROOT))
    from providers.local import HASHER

    stored = HASHER.hash(PASSWORD)
    n = 10
    t0 = time.process_time()
    for _ in range(n):
        HASHER.hash(PASSWORD)
    hash_ms = (time.process_time() - t0) * 1000 / n
    t0 = time.process_time()
    for _ in range(n):
        HASHER.verify(stored, PASSWORD)
    verify_ms = (time.process_time() - t0) * 1000 / n

    cores = os.cpu_count() or 1
    count = [0]
    lock = threading.Lock()
    end = time.perf_counter() + 1.5

    def spin() -> None:
        while time.perf_counter() < end:
            HASHER.verify(stored, PASSWORD)
            with lock:
                count[0] += 1

    threads = [threading.Thread(target=spin) for _ in range(cores)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parallel = count[0] / (time.perf_counter() - t0)
    params = f"t={HASHER.time_cost}, m={HASHER.memory_cost // 1024} MiB, p={HASHER.parallelism}"
    return [
        f"argon2id ({params}): {hash_ms:.1f} ms CPU per hash, {verify_ms:.1f} ms CPU per verify"
        f" -> at most ~{1000 / verify_ms:.0f} logins/s per core",
        f"  {cores} threads verifying at once here: {parallel:.0f} verifies/s (the login POST ceiling on this"
        f" machine); each check in progress holds {HASHER.memory_cost // 1024} MiB",
    ]


# -- one run: a configuration, a server, the scenarios -------------------------

def wait_quiet(limit: float) -> None:
    """Wait (at most ``limit`` s) until the other processes leave at least 1.5 cores idle."""
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + limit
    while True:
        busy0, t0 = machine_busy(), time.monotonic()
        time.sleep(1.0)
        used = (machine_busy() - busy0) / (time.monotonic() - t0)
        if used <= max(0.25, cores - 1.5) or time.monotonic() >= deadline:
            if used > max(0.25, cores - 1.5):
                print(f"  (machine still busy: other processes use {used * 100:.0f}% of a core)", flush=True)
            return


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def reset_postgres(url: str) -> None:
    """Create the bench database if needed and empty it (never the tests' database)."""
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("bench"):
        sys.exit(f"refusing to wipe database {name!r}: the bench database name must start with 'bench'")
    admin = urlsplit(url)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


def reset_redis(url: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter("ncc:*", count=1000))
    for i in range(0, len(keys), 1000):
        r.delete(*keys[i:i + 1000])


def make_config(directory: Path, port: int, backend: str, args: argparse.Namespace) -> tuple[Path, RP]:
    config = directory / "config"
    shutil.copytree(ROOT / "config", config)
    settings = yaml.safe_load((config / "broker.yaml").read_text())
    settings.update(issuer=f"http://{HOST}:{port}", keys_dir="keys")
    if backend == "postgres":
        settings.update(database_url=args.pg_url, redis_url=args.redis_url)
    else:
        settings["database_url"] = "sqlite:///bench.db"
        settings.pop("redis_url", None)
    (config / "broker.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    rp = None
    for path in sorted((config / "clients").glob("*.yaml")):
        client = yaml.safe_load(path.read_text())
        if client.get("token_endpoint_auth_method", "client_secret_basic") == "client_secret_basic" \
                and client.get("client_secret") and not str(client["client_secret"]).startswith("${"):
            rp = RP(f"http://{HOST}:{port}", path.stem, client["client_secret"], client["redirect_uris"][0])
            break
    if rp is None:
        sys.exit("no client_secret_basic client with a literal secret in config/clients/")

    cli = [tool("nc-connect"), "--config", str(config)]
    quiet = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, "cwd": directory}
    if backend == "postgres":
        reset_postgres(args.pg_url)
        reset_redis(args.redis_url)
        check(subprocess.run(cli + ["db", "upgrade"], **quiet))
    check(subprocess.run(cli + ["keys", "generate"], **quiet))
    check(subprocess.run(cli + ["users", "add", EMAIL, "--given-name", "Banc", "--family-name", "Essai",
                                "--birthdate", "1990-01-01"], input=PASSWORD + "\n", **quiet))
    return config, rp


def check(done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, done.args))} failed:\n{done.stdout}")


def start_server(server: str, config: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    if server == "gunicorn":
        command = [tool("nc-connect"), "--config", str(config), "serve", "--host", HOST, "--port", str(port),
                   "--workers", str(args.workers), "--threads", str(args.threads)]
    else:
        # granian's blocking threads per worker play the part of gunicorn's --threads; access log on,
        # as gunicorn's is (its default format logs the path without the query string).
        command = [tool("granian"), "--interface", "wsgi", "--host", HOST, "--port", str(port),
                   "--workers", str(args.workers), "--blocking-threads", str(args.threads),
                   "--access-log", "wsgi:app"]
    env = dict(os.environ, NC_CONNECT_CONFIG=str(config))
    with open(log, "w") as fh:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    probe = Http(f"http://{HOST}:{port}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if probe.get("/.well-known/openid-configuration").status == 200:
                probe.close()
                return proc
        except OSError:
            probe.close()
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"{server} did not answer within 60 s:\n{log.read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the process group this script started (server and workers); SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(25)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def discovery(conn: Http, _=None) -> None:
    r = conn.get("/.well-known/openid-configuration")
    if r.status != 200 or "issuer" not in r.json():
        raise Failed(f"discovery: {r.status}")


def parallel_prepare(rp: RP, make: Callable[[Http], Any], count: int, concurrency: int, limit: float) -> list:
    """Run ``make`` up to ``count`` times (at most ``limit`` seconds); the values it returned."""
    out: list = []
    lock = threading.Lock()

    def op(conn: Http, _):
        value = make(conn)
        with lock:
            out.append(value)

    result = run_load("prepare", "op", op, rp.base, concurrency=concurrency, duration=limit, cap=count)
    if result.errors:
        print(f"    (preparation: {result.errors} failures, first: {result.first_error})")
    return out


def scenarios(rp: RP, sampler: Sampler, args: argparse.Namespace, login_rate: float) -> list[Result]:
    c, d, base = args.concurrency, args.duration, rp.base
    results = []

    def show(result: Result, note: str = "") -> None:
        results.append(result)
        print(result.line() + note, flush=True)

    # (1) discovery
    show(run_load("discovery GET", "req", discovery, base, concurrency=c, duration=d, sampler=sampler))

    # signed-in browsers, one per load thread (c password logins, outside any timed window)
    browsers = [Browser(rp) for _ in range(c)]
    conn = Http(base)
    for b in browsers:
        b.sign_in(conn)
    conn.close()

    # (2) token endpoint: codes issued first by SSO authorize requests (their rate is shown too)
    codes: list[tuple[str, str]] = []

    def issue(conn: Http, browser: Browser):
        codes.append(browser.code(conn))

    show(run_load("SSO authorize -> code", "req", issue, base, concurrency=c, duration=min(1.5 * d, 30),
                  per_thread=browsers, sampler=sampler, cap=args.codes))
    issued = time.monotonic()

    def token(conn: Http, item):
        exchange(rp, conn, *item)

    result = run_load("token (code exchange)", "req", token, base, concurrency=c, duration=d, items=iter(codes),
                      sampler=sampler)
    show(result, "  (pre-issued codes all used up)" if result.ok + result.errors >= len(codes) else "")
    if time.monotonic() - issued > 55:
        print("    warning: some codes may have outlived their 60 s lifetime", flush=True)

    # (3) complete SSO flow
    def sso(conn: Http, browser: Browser):
        code, verifier = browser.code(conn)
        userinfo(conn, exchange(rp, conn, code, verifier))

    show(run_load("SSO flow (4 requests)", "flow", sso, base, concurrency=c, duration=d, per_thread=browsers,
                  sampler=sampler))

    # (4) login POST: forms fetched first (authorize + login page each), only the POSTs are timed
    def form(conn: Http):
        b = Browser(rp)
        return (b, *b.login_form(conn))

    forms = parallel_prepare(rp, form, min(args.codes, int(login_rate * d * 1.5) + 2 * c), c, 20)

    def login(conn: Http, item):
        b, csrf, rid = item
        b.submit(conn, csrf, rid)

    result = run_load("login POST (argon2id)", "req", login, base, concurrency=c, duration=d, items=iter(forms),
                      sampler=sampler)
    show(result, "  (prepared forms all used up)" if result.ok + result.errors >= len(forms) else "")
    return results


def one_run(server: str, backend: str, args: argparse.Namespace, login_rate: float) -> tuple[list[Result], int, str]:
    with tempfile.TemporaryDirectory(prefix=f"ncc-bench-{server}-{backend}-") as tmp:
        directory = Path(tmp)
        if args.wait_quiet:
            wait_quiet(args.wait_quiet)
        port = free_port()
        config, rp = make_config(directory, port, backend, args)
        log = directory / "server.log"
        t0 = time.monotonic()
        proc = start_server(server, config, port, args, log)
        startup = time.monotonic() - t0
        sampler = Sampler(proc.pid, urlsplit(args.pg_url).path.lstrip("/") if backend == "postgres" else None)
        sampler.start()
        try:
            time.sleep(0.5)
            idle_rss, _ = sampler.window()
            workers = len(sampler.pids)
            print(f"\n== {server} / {backend}: {args.workers} workers x {args.threads} threads, "
                  f"{args.concurrency} concurrent clients, {args.duration:g} s per scenario; ready in "
                  f"{startup:.1f} s, {workers} processes, idle RSS {idle_rss / 2**20:.0f} MiB", flush=True)
            run_load("warm-up", "req", discovery, rp.base, concurrency=args.concurrency, duration=0.5)
            results = scenarios(rp, sampler, args, login_rate)
            time.sleep(1.0)
            after_rss, _ = sampler.window()
            print(f"  RSS 1 s after the load: {after_rss / 2**20:.0f} MiB (idle after start: "
                  f"{idle_rss / 2**20:.0f} MiB)", flush=True)
        finally:
            sampler.stop_event.set()
            stop_server(proc)
        text = log.read_text(errors="replace")
        problems = [line for line in text.splitlines()
                    if re.search(r"Traceback|\bERROR\b|CRITICAL|WORKER TIMEOUT|\[error\]", line)]
        audit = len(re.findall(r"login success", text))
        notes = (f"server log: {len(text.splitlines())} lines, {len(problems)} error lines, "
                 f"{audit} 'login success' audit lines")
        if problems:
            notes += "\n    first: " + "\n    ".join(problems[:3])
        print("  " + notes, flush=True)
        return results, idle_rss, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["gunicorn", "granian", "both"], default="both")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per timed scenario (1-20, default 4)")
    parser.add_argument("--concurrency", type=int, default=8, help="load threads (1-64, default 8)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4, as 'serve')")
    parser.add_argument("--codes", type=int, default=3000, help="cap on pre-issued codes and login forms")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/bench",
                        help="PostgreSQL database for --backend postgres; WIPED at each run (name must start with 'bench')")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14",
                        help="Redis for --backend postgres; its ncc:* keys are deleted at each run")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="before each run, wait up to S seconds for other processes to calm down")
    parser.add_argument("--skip-argon2", action="store_true", help="do not measure the argon2id cost")
    args = parser.parse_args()
    args.duration = max(1.0, min(20.0, args.duration))
    args.concurrency = max(1, min(64, args.concurrency))
    if not sys.platform.startswith("linux"):
        sys.exit("this benchmark reads /proc: Linux only")

    servers = ["gunicorn", "granian"] if args.server == "both" else [args.server]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print(f"NC Connect benchmark: {os.cpu_count()} CPU(s), Python {sys.version.split()[0]}, "
          f"load generator and server on the same machine (127.0.0.1)")
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"warning: the machine is busy before the start (load average {load:.1f}); the 'other processes'"
              f" CPU share printed per scenario tells how much the figures are disturbed", flush=True)
    login_rate = 100.0
    if not args.skip_argon2:
        lines = argon2_cost()
        print("\n".join(lines), flush=True)
        login_rate = float(re.search(r"(\d+) verifies/s", lines[1]).group(1))

    summary = []
    t0 = time.monotonic()
    for backend in backends:
        for server in servers:
            results, idle, _ = one_run(server, backend, args, login_rate)
            summary.append((server, backend, idle, results))

    print(f"\n== summary ({time.monotonic() - t0:.0f} s)")
    print(f"  {'server':<9} {'backend':<9} {'scenario':<24} {'ops/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'peak RSS MiB':>13} {'CPU ms/op':>10} {'PG ms/op':>9} {'others%':>8} {'errors':>7}")
    for server, backend, idle, results in summary:
        for r in results:
            per_op = r.server_cpu * 1000 / r.ok if r.ok else float("nan")
            db = f"{r.db_cpu * 1000 / r.ok:9.1f}" if r.db_cpu is not None and r.ok else f"{'-':>9}"
            print(f"  {server:<9} {backend:<9} {r.name:<24} {r.rate:8.1f} {r.pct(0.5):8.1f} {r.pct(0.99):8.1f} "
                  f"{r.peak_rss / 2**20:13.0f} {per_op:10.1f} {db} {r.other_cpu * 100:8.0f} {r.errors:7d}")
        print(f"  {server:<9} {backend:<9} {'(idle, after start)':<24} {'':>8} {'':>8} {'':>8} {idle / 2**20:13.0f}")


if __name__ == "__main__":
    main()
