"""A real local Spark Connect server for tests: pip's pyspark running ``SparkConnectServer``.

    with connect_server(tmp_path) as url:           # url == "sc://127.0.0.1:<port>"
        spark = SparkSession.builder.remote(url).getOrCreate()

The server is ``bin/spark-submit`` from the installed pyspark package, with the
``spark-connect`` jar that ships in the wheel as its application and Delta from
``--packages`` (the version of the installed ``delta-spark``, so jar and Python API
match). It runs in a session of its own, which also holds the Python workers it forks
(UDFs, streaming ``foreachBatch``); leaving the block ends every process of that
session, so a failing test leaves no JVM or Python worker behind. Server-side Python
runs this interpreter (``sys.executable``), so it imports the same venv and the
editable ``userprofile`` as the tests do (but not ``tests``: the checkout is not on
the workers' ``sys.path``, so functions sent to the server must not live in a test module).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
START_TIMEOUT = 180.0
STOP_GRACE = 5.0
LOG_NAME = "connect-server.log"
PID_NAME = "connect-server.pid"
LOG_TAIL = 40
# The same lock tests/conftest.py takes around a classic session's start: one Ivy
# resolution of the Delta package at a time per machine (pytest -n runs several workers).
START_LOCK = Path.home() / ".userprofile-spark-start.lock"
CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"
JAVA_OPTIONS = "spark.driver.extraJavaOptions"
# Variables a parent pyspark process may have set that would turn the server's own
# Python workers into clients of the wrong JVM or of another Connect server.
INHERITED_SPARK_VARS = (
    "PYSPARK_GATEWAY_PORT",
    "PYSPARK_GATEWAY_SECRET",
    "PYSPARK_SUBMIT_ARGS",
    "SPARK_REMOTE",
    CONNECT_MODE,
    "SPARK_LOCAL_REMOTE",
    "SPARK_API_MODE",
    "SPARK_CONF_DIR",
)
# Run in a fresh interpreter: a Connect client changes process-wide state
# (os.environ["SPARK_CONNECT_MODE_ENABLED"], the default session) that tests must not inherit.
PROBE = (
    "import sys\n"
    "from pyspark.sql import SparkSession\n"
    "spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()\n"
    "assert spark.range(1).collect()[0][0] == 0\n"
    "spark.stop()\n"
)


class ConnectServerError(RuntimeError):
    """The server did not come up; the message ends with the last lines of its log."""


@contextlib.contextmanager
def connect_server(work_dir: Path, extra_conf: dict[str, str] | None = None) -> Iterator[str]:
    """Start a Spark Connect server with Delta in ``work_dir``; yield its ``sc://`` URL.

    ``work_dir`` holds the server's log, pid file (while it runs), warehouse, Derby home
    and local dirs. On exit every process of the server's session is ended, whatever
    happened in the block.
    """
    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"sc://{HOST}:{port}"
    log_path = work_dir / LOG_NAME
    command = submit_command(work_dir, port, extra_conf or {})
    with START_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = launch(command, work_dir, log_path)
        try:
            wait_until_ready(process, url, port, log_path)
        except BaseException:
            stop(process, work_dir)
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        yield url
    finally:
        stop(process, work_dir)


@contextlib.contextmanager
def connect_mode() -> Iterator[None]:
    """Let pyspark's Connect client work in this process for the block, then undo it.

    While ``SPARK_CONNECT_MODE_ENABLED`` is in ``os.environ``, pyspark dispatches
    ``SparkSession``, ``DataFrame`` and ``functions`` calls to their Connect classes, so a
    classic session of the same process fails (``NOT_COLUMN_OR_STR``). A remote builder
    sets it and ``stop()`` leaves it set (pyspark 4.0): the whole test run would turn remote.
    """
    before = os.environ.get(CONNECT_MODE)
    os.environ[CONNECT_MODE] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CONNECT_MODE, None)
        else:
            os.environ[CONNECT_MODE] = before


def spark_home() -> Path:
    """The installed pyspark package's folder: it holds ``bin/spark-submit`` and ``jars/``."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ConnectServerError("pyspark is not installed in this Python environment")
    return Path(next(iter(spec.submodule_search_locations)))


def connect_jar(home: Path) -> Path:
    """The server's jar from the pyspark wheel (``jars/spark-connect_<scala>-<spark>.jar``)."""
    found = sorted((home / "jars").glob("spark-connect_*.jar"))
    if len(found) != 1:
        raise ConnectServerError(f"expected one spark-connect jar in {home / 'jars'}: {found}")
    return found[0]


def delta_package() -> str:
    """Delta's Maven coordinate for the installed delta-spark (jar and Python API in step)."""
    return f"io.delta:delta-spark_2.13:{importlib.metadata.version('delta-spark')}"


def free_port() -> int:
    """A port that is free now (the server binds it a few seconds later; a race is unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def server_conf(work_dir: Path, port: int) -> dict[str, str]:
    """Delta on, small and quiet, UTC; everything the server writes stays under work_dir."""
    return {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.connect.grpc.binding.address": HOST,  # else it listens on every interface
        "spark.connect.grpc.binding.port": str(port),
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4",
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(work_dir / "spark-warehouse"),
        JAVA_OPTIONS: f"-Dderby.system.home={work_dir / 'derby'}",
    }


def submit_command(work_dir: Path, port: int, extra_conf: dict[str, str]) -> list[str]:
    """spark-submit with the Connect server as the application."""
    home = spark_home()
    conf = merged_conf(server_conf(work_dir, port), extra_conf)
    return [
        str(home / "bin" / "spark-submit"),
        *("--class", SERVER_CLASS),
        *("--name", "userprofile-tests-connect"),
        *("--master", "local[2]"),
        *("--driver-memory", "2g"),
        *("--packages", delta_package()),
        *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
        str(connect_jar(home)),
    ]


def merged_conf(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """``extra`` over ``base``, except that JVM options add to the base ones (Derby's home)."""
    conf = {**base, **extra}
    if JAVA_OPTIONS in base and JAVA_OPTIONS in extra:
        conf[JAVA_OPTIONS] = f"{base[JAVA_OPTIONS]} {extra[JAVA_OPTIONS]}"
    return conf


def server_env(work_dir: Path) -> dict[str, str]:
    """This process's environment minus pyspark's client state, plus the server's own.

    An empty SPARK_CONF_DIR keeps a user's spark-defaults.conf out; SPARK_LOCAL_DIRS
    keeps shuffle and block files under work_dir, even when the JVM is killed.
    """
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_SPARK_VARS}
    conf_dir = work_dir / "conf"
    local_dir = work_dir / "local"
    conf_dir.mkdir(exist_ok=True)
    local_dir.mkdir(exist_ok=True)
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_CONF_DIR=str(conf_dir),
        SPARK_LOCAL_DIRS=str(local_dir),
        SPARK_LOCAL_IP=HOST,
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    return env


def launch(command: list[str], work_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start the server in a new session (its pid is the group id, written to a pid file)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=work_dir,
            env=server_env(work_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (work_dir / PID_NAME).write_text(f"{process.pid}\n", encoding="utf-8")
    return process


def wait_until_ready(process: subprocess.Popen[bytes], url: str, port: int, log_path: Path) -> None:
    """Return once the port accepts connections and a client can run a query.

    An open port alone is not enough: gRPC may listen before sessions can be served.
    """
    deadline = time.monotonic() + START_TIMEOUT
    last_error = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConnectServerError(
                failure(f"server exited with code {process.returncode}", log_path)
            )
        if port_open(port):
            last_error = client_probe(url, deadline - time.monotonic())
            if not last_error:
                return
        time.sleep(0.5)
    reason = f"server not ready after {START_TIMEOUT:.0f} s"
    raise ConnectServerError(failure(reason, log_path, last_error))


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def client_probe(url: str, timeout: float) -> str:
    """Run ``spark.range(1).collect()`` from a fresh client; '' on success, else its error."""
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_SPARK_VARS}
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, url],
            env=env,
            capture_output=True,
            text=True,
            timeout=max(timeout, 1.0),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "client probe timed out"
    return "" if done.returncode == 0 else done.stderr.strip()[-2000:] or "client probe failed"


def failure(reason: str, log_path: Path, probe_error: str = "") -> str:
    """The error message: the reason, the last client error, the log's last lines."""
    probe = f"\nlast client probe error:\n{probe_error}" if probe_error else ""
    return f"{reason}{probe}\n--- last {LOG_TAIL} lines of {log_path} ---\n{tail(log_path)}"


def tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def stop(process: subprocess.Popen[bytes], work_dir: Path) -> None:
    """End everything the server started: SIGTERM to its group (Spark's shutdown hooks stop
    the Python workers), then SIGKILL to whatever of its session is left after STOP_GRACE.

    The session, not only the group: pyspark's worker daemon moves itself into a process
    group of its own (``os.setpgid(0, 0)`` in pyspark/daemon.py), keeping the session.
    """
    leader = process.pid  # start_new_session: the leader's pid is its group and session id
    deadline = time.monotonic() + STOP_GRACE
    signal_group(leader, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE)  # reaps the leader: a zombie still counts as alive
    wait_for_exit(leader, deadline - time.monotonic())
    signal_group(leader, signal.SIGKILL)
    for pid in session_members(leader):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    wait_for_exit(leader, STOP_GRACE)
    (work_dir / PID_NAME).unlink(missing_ok=True)  # a stale pid may be reused by another


def signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def session_members(session: int) -> set[int]:
    """Pids in the session (Linux /proc; empty elsewhere, where only the group is ended)."""
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # the process ended meanwhile
            continue
        if int(fields[3]) == session:  # after "pid (comm)": state ppid pgrp session
            members.add(int(stat.parent.name))
    return members


def alive(leader: int) -> bool:
    """Whether any process (a zombie included) is left in the leader's group or session."""
    try:
        os.killpg(leader, 0)
    except ProcessLookupError:
        return bool(session_members(leader))
    return True


def wait_for_exit(leader: int, timeout: float) -> bool:
    """Wait until nothing of the leader's group or session is left; whether it was in time."""
    deadline = time.monotonic() + timeout
    while alive(leader):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True
