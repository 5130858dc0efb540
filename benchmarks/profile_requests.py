"""Where an annotator request's CPU goes (issue #19 point 2: ≤ 5 ms of server CPU
per request, web + database, and ≥ 500 submits/s closed-loop on this machine).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/preflab_bench \\
        .venv/bin/python benchmarks/profile_requests.py [--pairs 20000] [--cycles 2000] [--profile] [--label before]

Builds a pairwise project of --pairs comparisons with the bulk helpers
(benchmarks/_bulk.py; PostgreSQL only, in a database of its own, created and
migrated when missing) under the HH rubric (two pairwise criteria, as a real
project asks), with --annotators accounts holding API tokens. Then, in this one
process and thread, it runs --cycles lease → submit cycles round-robin over the
annotators through the production WSGI application (``preflab.wsgi``, DEBUG off,
every middleware), with exactly the requests the annotator's client sends:

    POST /api/v1/projects/<slug>/tasks/next/   {"kind": "pairwise"}
    POST /api/v1/tasks/<id>/submit/            {"preference", "criteria", "time_on_task_ms", "idempotency_key"}

each with ``Authorization: Token <key>``. Per request it measures the CPU of this
process (``time.process_time`` around the WSGI call: Django, DRF, the ORM,
psycopg) and of the PostgreSQL backend serving the connection
(``/proc/<pg_backend_pid>/schedstat``, nanoseconds of CPU; the backend is
single-threaded), the wall time, and the statements sent. What an HTTP server
adds (gunicorn parsing the request and writing the answer) is not in these
figures; ``benchmarks/load_queue.py`` measures the whole over HTTP.

From the mean CPU per cycle it prints the closed-loop bound: with C cores and
nothing else running, at most C / (CPU per cycle) cycles (= submits) per second,
whatever the server's concurrency.

With --profile it then runs --profile-cycles more cycles under cProfile (wall
clock; the profiler's own overhead inflates Python's share) and prints the
self time grouped by layer (handler and middleware, auth, DRF, URL resolving,
ORM query building and SQL compiling, model instances, Django's DB backend,
psycopg including the wait for PostgreSQL, JSON, our code) and the top functions
by cumulative time.

Ends with one JSON line and writes benchmarks/results/profile_requests[-<label>].json
(the command, ``uptime`` and the load average before and after are in it; the
machine may be shared, so read CPU per request as the load-independent figure).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bulk  # noqa: E402
import _web  # noqa: E402

TARGET_CPU_MS = 5.0
TARGET_SUBMITS_PER_S = 500
CORES = 2  # the machine the targets are set for


# --- the PostgreSQL backend's CPU -------------------------------------------------


def backend_cpu_ns(pid: int | None) -> int | None:
    """CPU time of a PostgreSQL backend so far, in ns (schedstat's first field;
    /proc/<pid>/stat's ticks, 10 ms each, where schedstat is missing)."""
    if pid is None:
        return None
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        seconds = _web.cpu_seconds(pid)
        return None if seconds is None else int(seconds * 1e9)


def backend_pid() -> int | None:
    """The backend of Django's connection in this thread, without a query (None
    while no connection is open: Django reopens it when CONN_MAX_AGE runs out)."""
    from django.db import connection

    raw = connection.connection
    return raw.info.backend_pid if raw is not None and not raw.closed else None


# --- one request through the WSGI application ---------------------------------------


class Wsgi:
    """Calls the production WSGI application as gunicorn would, with the headers an
    API client sends."""

    def __init__(self) -> None:
        from django.db import connection

        from preflab.wsgi import application

        self.app = application
        self.statements = 0
        connection.execute_wrappers.append(self._count)

    def _count(self, execute, sql, params, many, context):
        self.statements += 1
        return execute(sql, params, many, context)

    def post(self, path: str, token: str, body: dict) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
            "HTTP_HOST": "127.0.0.1", "HTTP_AUTHORIZATION": f"Token {token}", "HTTP_ACCEPT": "application/json",
            "wsgi.input": io.BytesIO(data), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        }
        status = []
        result = self.app(environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            payload = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        return int(status[0].split()[0]), payload


class Sample:
    """Per-route figures of the timed pass."""

    def __init__(self) -> None:
        self.py_ms: list[float] = []
        self.pg_ms: list[float] = []
        self.wall_ms: list[float] = []
        self.statements: list[int] = []

    def summary(self) -> dict:
        def mean(xs: list[float]) -> float:
            return round(statistics.fmean(xs), 3) if xs else 0.0

        return {"requests": len(self.py_ms), "python_cpu_ms": mean(self.py_ms), "postgres_cpu_ms": mean(self.pg_ms),
                "server_cpu_ms": round(mean(self.py_ms) + mean(self.pg_ms), 3),
                "python_cpu_ms_p50": round(statistics.median(self.py_ms), 3) if self.py_ms else None,
                "wall_ms_p50": round(statistics.median(self.wall_ms), 3) if self.wall_ms else None,
                "statements": round(statistics.fmean(self.statements), 2) if self.statements else None}


class Cycler:
    """Lease → submit cycles, round-robin over the annotators' tokens."""

    def __init__(self, wsgi: Wsgi, slug: str, tokens: list[str], criteria: list[str], seed: int = 0) -> None:
        import random

        self.wsgi, self.slug, self.tokens, self.criteria = wsgi, slug, tokens, criteria
        self.rng = random.Random(seed)
        self.turn = 0
        self.failures: dict[str, int] = defaultdict(int)
        self.submitted = 0

    def _measured(self, sample: Sample | None, profile: cProfile.Profile | None, path: str, token: str,
                  body: dict) -> tuple[int, bytes]:
        pid = backend_pid()
        pg0 = backend_cpu_ns(pid)
        before = self.wsgi.statements
        t0, w0 = time.process_time(), time.perf_counter()
        if profile is not None:
            profile.enable()
        status, payload = self.wsgi.post(path, token, body)
        if profile is not None:
            profile.disable()
        py, wall = time.process_time() - t0, time.perf_counter() - w0
        if sample is not None:
            after_pid = backend_pid()
            pg1 = backend_cpu_ns(after_pid)
            # a backend born inside the request (Django reconnects when CONN_MAX_AGE
            # runs out) counts from zero: its start-up is part of the cost
            pg = (pg1 - (pg0 if after_pid == pid and pg0 is not None else 0)) if pg1 is not None else 0
            sample.py_ms.append(py * 1000)
            sample.pg_ms.append(pg / 1e6)
            sample.wall_ms.append(wall * 1000)
            sample.statements.append(self.wsgi.statements - before)
        return status, payload

    def cycle(self, lease: Sample | None = None, submit: Sample | None = None,
              profile: cProfile.Profile | None = None) -> bool:
        token = self.tokens[self.turn % len(self.tokens)]
        self.turn += 1
        status, payload = self._measured(lease, profile, f"/api/v1/projects/{self.slug}/tasks/next/", token,
                                         {"kind": "pairwise"})
        if status != 200:
            self.failures[f"next {status}"] += 1
            return status != 204
        task = json.loads(payload)
        answer = {"preference": self.rng.randint(-3, 3), "time_on_task_ms": self.rng.randint(2000, 30000),
                  "criteria": {key: self.rng.choice(("A", "B", "tie")) for key in self.criteria},
                  "idempotency_key": uuid.uuid4().hex}
        status, payload = self._measured(submit, profile, f"/api/v1/tasks/{task['assignment']}/submit/", token, answer)
        if status != 200:
            self.failures[f"submit {status}: {payload[:200].decode(errors='replace')}"] += 1
        else:
            self.submitted += 1
        return True


# --- the profile, by layer --------------------------------------------------------------

# (layer, path fragments of the functions' files), first match wins; built-in
# functions are matched on their name (psycopg's C wait, json's C encoder).
LAYERS = [
    ("psycopg (incl. waiting for PostgreSQL)", ("/psycopg/", "/psycopg_binary/", "psycopg", "_psycopg")),
    ("JSON parse/render", ("/json/", "rest_framework/renderers.py", "rest_framework/parsers.py",
                           "rest_framework/utils/encoders.py", "_json.")),
    ("auth (token, user)", ("rest_framework/authentication.py", "rest_framework/authtoken/", "django/contrib/auth/",
                            "/axes/")),
    ("DRF serializers and fields", ("rest_framework/serializers.py", "rest_framework/fields.py",
                                    "rest_framework/utils/serializer_helpers.py")),
    ("DRF view, request, response", ("rest_framework/",)),
    ("middleware and handler", ("django/core/handlers/", "django/middleware/", "django/contrib/sessions/",
                                "django/contrib/messages/", "/whitenoise/", "/django_htmx/", "preflab/queue_errors.py",
                                "django/utils/deprecation.py", "django/http/")),
    ("URL resolving", ("django/urls/",)),
    ("ORM: query building and SQL compile", ("django/db/models/sql/", "django/db/models/expressions.py",
                                             "django/db/models/lookups.py", "django/db/models/query_utils.py",
                                             "django/db/models/fields/related_lookups.py",
                                             "django/db/models/functions/")),
    ("ORM: querysets and model instances", ("django/db/models/",)),
    ("Django DB backend and transactions", ("django/db/",)),
    ("our code (annotate, rubrics, preflab)", ("/annotate/", "/rubrics/", "/preflab/")),
    ("Django other (settings, signals, utils)", ("django/",)),
    ("benchmark harness (WSGI environ, statement counter)", ("benchmarks/profile_requests.py",)),
]
OTHER = "Python stdlib and other"


def _layer(filename: str, name: str) -> str | None:
    """The layer of a function's own code; None for built-ins and the standard
    library, whose time goes to whoever called them."""
    where = f"{filename} {name}"
    for layer, marks in LAYERS:
        if any(m in where for m in marks):
            return layer
    return None


def profile_summary(profile: cProfile.Profile, requests: int, top: int = 3) -> dict:
    """Self time by layer (sums to the total, nothing counted twice; a built-in's or
    the standard library's time is split over its callers' layers by what each call
    site spent) with each layer's top functions by cumulative time, in ms per request."""
    stats = pstats.Stats(profile).stats
    memo: dict = {}

    def shares(func, seen=frozenset()) -> dict[str, float]:
        """How a function's self time divides over layers (fractions summing to 1)."""
        if func in memo:
            return memo[func]
        own = _layer(func[0], func[2])
        if own is not None:
            return memo.setdefault(func, {own: 1.0})
        callers = stats[func][4]
        spent = sum(v[2] for v in callers.values())
        if not callers or spent <= 0 or func in seen:
            return {OTHER: 1.0}
        out: dict[str, float] = defaultdict(float)
        for caller, v in callers.items():
            for layer, part in (shares(caller, seen | {func}) if caller in stats else {OTHER: 1.0}).items():
                out[layer] += part * v[2] / spent
        memo[func] = dict(out)
        return memo[func]

    by_layer: dict[str, float] = defaultdict(float)
    functions: dict[str, list] = defaultdict(list)
    total = 0.0
    for func, (_cc, calls, tottime, cumtime, _callers) in stats.items():
        for layer, part in shares(func).items():
            by_layer[layer] += tottime * part
        total += tottime
        if (own := _layer(func[0], func[2])) is not None:
            functions[own].append((cumtime, calls, f"{_short(func[0])}:{func[1]}({func[2]})"))
    per = 1000 / max(requests, 1)
    layers = []
    for layer, own in sorted(by_layer.items(), key=lambda kv: -kv[1]):
        best = sorted(functions[layer], reverse=True)[:top]
        layers.append({"layer": layer, "ms_per_request": round(own * per, 3),
                       "share": round(own / total, 3) if total else 0,
                       "top_cumulative": [{"function": f, "cum_ms_per_request": round(c * per, 3),
                                           "calls_per_request": round(n / max(requests, 1), 2)} for c, n, f in best]})
    return {"requests": requests, "total_ms_per_request": round(total * per, 3), "layers": layers}


def _short(filename: str) -> str:
    for mark in ("site-packages/", str(_web.REPO) + "/"):
        if mark in filename:
            return filename.split(mark, 1)[1]
    return filename


# --- set-up -------------------------------------------------------------------------------


def _prepare(args: argparse.Namespace):
    from annotate import services
    from annotate.models import Comparison, Project, Role
    from rubrics import services as rubric_services
    from rubrics.models import RubricVersion

    slug = f"bench-profile-{args.pairs}"
    if Project.objects.filter(slug=slug).exists():
        _bulk.project_drop(slug)  # every run starts from the same open pool
    project = _bulk.project_with_pairs(slug=slug, pairs=args.pairs, overlap=2, seed=args.seed)
    version = RubricVersion.objects.filter(rubric__slug="bench-hh").first()
    if version is None:
        draft = rubric_services.rubric_create_from_template(template="hh", slug="bench-hh")
        version = rubric_services.rubric_version_publish(version=draft)
    services.project_pin_rubric(project=project, version=version)
    users = _bulk.accounts("bench-profiler", args.annotators)
    for user in users:
        services.membership_set(project=project, user=user, role=Role.ANNOTATOR)
    _bulk.counters_refresh(project)
    assert Comparison.objects.filter(project=project).count() == args.pairs
    criteria = list(version.criteria.filter(scale="pairwise").values_list("key", flat=True))
    return project, [u.api_token for u in users], criteria


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20_000, help="open comparisons (default 20000)")
    parser.add_argument("--annotators", type=int, default=8, help="accounts taking turns (default 8)")
    parser.add_argument("--cycles", type=int, default=2000, help="timed lease → submit cycles (default 2000)")
    parser.add_argument("--warmup", type=int, default=100, help="untimed cycles first (default 100)")
    parser.add_argument("--profile", action="store_true", help="then profile --profile-cycles more under cProfile")
    parser.add_argument("--profile-cycles", type=int, default=500, help="cycles under the profiler (default 500)")
    parser.add_argument("--profile-clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this process's CPU time (waits for PostgreSQL left out; default); wall: elapsed")
    parser.add_argument("--profile-dump", type=Path, help="also write the raw cProfile stats here (for pstats)")
    parser.add_argument("--label", default="", help="results file suffix (e.g. before, after-auth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path,
                        help="results file (default benchmarks/results/profile_requests[-label].json)")
    args = parser.parse_args()
    if args.pairs < args.warmup + args.cycles + (args.profile_cycles if args.profile else 0):
        sys.exit("--pairs must be at least --warmup + --cycles (+ --profile-cycles): each cycle labels one pair")

    _web.database_url_or_exit()
    data_dir = tempfile.mkdtemp(prefix="preflab-bench-")
    try:
        ok = _bench(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(0 if ok else 1)


def _bench(args: argparse.Namespace, data_dir: str) -> bool:
    env = _web.server_env(data_dir)
    # One persistent connection, not the pool: the PostgreSQL CPU is read from the
    # backend of pg_backend_pid(), which must be the one every request then uses.
    env["PREFLAB_DB_POOL_SIZE"] = "0"
    env.setdefault("PREFLAB_DB_NO_MERGEJOIN", "1")  # as gunicorn's post_fork sets it for the web tier
    _web.prepare(env)
    report = _web.report_header("profile_requests")
    project, tokens, criteria = _prepare(args)
    from django.db import close_old_connections

    close_old_connections()
    wsgi = Wsgi()
    cycler = Cycler(wsgi, project.slug, tokens, criteria, seed=args.seed)
    for _ in range(args.warmup):
        cycler.cycle()
    lease, submit = Sample(), Sample()
    load_before = _web.load_average()
    wall0 = time.perf_counter()
    for _ in range(args.cycles):
        if not cycler.cycle(lease, submit):
            break
    wall = time.perf_counter() - wall0
    profile = None
    if args.profile:
        profile = cProfile.Profile(time.process_time) if args.profile_clock == "cpu" else cProfile.Profile()
        for _ in range(args.profile_cycles):
            cycler.cycle(profile=profile)

    figures = {"lease": lease.summary(), "submit": submit.summary()}
    per_request = (figures["lease"]["server_cpu_ms"] + figures["submit"]["server_cpu_ms"]) / 2
    per_cycle = figures["lease"]["server_cpu_ms"] + figures["submit"]["server_cpu_ms"]
    report.update(
        label=args.label, pairs=args.pairs, annotators=args.annotators, cycles=args.cycles, warmup=args.warmup,
        rubric="HH template (2 pairwise criteria)", load_average_before=load_before, routes=figures,
        server_cpu_ms_per_request=round(per_request, 3), server_cpu_ms_per_cycle=round(per_cycle, 3),
        cycle_bound_per_s_on_2_cores=round(CORES * 1000 / per_cycle, 1) if per_cycle else None,
        in_process_cycles_per_s=round(len(lease.py_ms) / wall, 1) if wall else None,
        targets={"server_cpu_ms_per_request": TARGET_CPU_MS, "submits_per_s": TARGET_SUBMITS_PER_S},
        verdicts={"server_cpu_ms_per_request": _web.verdict(per_request, TARGET_CPU_MS, at_most=True),
                  "submits_per_s_cpu_bound": _web.verdict(CORES * 1000 / per_cycle if per_cycle else None,
                                                          TARGET_SUBMITS_PER_S, at_most=False)},
        failures=dict(cycler.failures), submitted=cycler.submitted,
        note="in-process through preflab.wsgi.application (no HTTP server): Python CPU from time.process_time, "
             "PostgreSQL CPU from /proc/<backend>/schedstat; the bound is cores / CPU per cycle",
    )
    if profile is not None:
        report["profile"] = profile_summary(profile, 2 * args.profile_cycles)
        report["profile"]["clock"] = args.profile_clock
        if args.profile_dump:
            profile.dump_stats(args.profile_dump)
    _print(report)
    out = args.out or _web.REPO / "benchmarks" / "results" / (
        f"profile_requests{'-' + args.label if args.label else ''}.json")
    _web.write_results(report, out)
    return not cycler.failures


def _print(r: dict) -> None:
    print(f"\n{r['cycles']} lease → submit cycles in-process, {r['pairs']} pairs, {r['annotators']} annotators, "
          f"{r['rubric']}; load average {r['load_average_before']} → {_web.load_average()}")
    print(f"{'':10}{'python CPU ms':>15}{'p50':>8}{'PG CPU ms':>11}{'server CPU ms':>15}{'statements':>12}"
          f"{'wall p50':>10}")
    for route in ("lease", "submit"):
        f = r["routes"][route]
        print(f"{route:10}{f['python_cpu_ms']:>15.2f}{f['python_cpu_ms_p50'] or 0:>8.2f}{f['postgres_cpu_ms']:>11.2f}"
              f"{f['server_cpu_ms']:>15.2f}{f['statements'] or 0:>12}{f['wall_ms_p50'] or 0:>10.2f}")
    print(f"server CPU per request {r['server_cpu_ms_per_request']} ms (target ≤ {TARGET_CPU_MS}: "
          f"{r['verdicts']['server_cpu_ms_per_request']}); per cycle {r['server_cpu_ms_per_cycle']} ms → at most "
          f"{r['cycle_bound_per_s_on_2_cores']} submits/s on {CORES} idle cores (target ≥ {TARGET_SUBMITS_PER_S}: "
          f"{r['verdicts']['submits_per_s_cpu_bound']}); one thread in-process ran {r['in_process_cycles_per_s']} "
          "cycles/s")
    if r["failures"]:
        print(f"FAILURES: {r['failures']}")
    if "profile" in r:
        p = r["profile"]
        print(f"\nprofile: {p['requests']} requests, {p['total_ms_per_request']} ms ({p['clock']} clock) per request "
              "under cProfile; "
              "self time by layer, and its top functions by cumulative time (ms per request, calls per request):")
        for row in p["layers"]:
            print(f"  {row['layer']:44}{row['ms_per_request']:>8.3f} ms{row['share']:>8.1%}")
            for f in row["top_cumulative"]:
                print(f"      {f['cum_ms_per_request']:>8.3f}{f['calls_per_request']:>8}  {f['function']}")

if __name__ == "__main__":
    main()
