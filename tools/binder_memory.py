#!/usr/bin/env python3
"""Measure each notebook as Binder runs it: a Jupyter server, its kernel, and their memory.

    python -m tools.binder_memory [--profile cpu] [--no-write] [--json FILE] [NOTEBOOK ...]

For each notebook, as in a learner's Binder session: start a fresh JupyterLab server from
this Python environment (127.0.0.1, a free port, a token, root folder ``notebooks/``), open
the notebook through the server's REST API (a session, so the kernel's working directory is
``notebooks/``), run its code cells one after another through the kernel's websocket channel
(``execute_request`` / ``execute_reply`` of the Jupyter messaging protocol), then shut the
kernel and the server down. The server's environment sets ``COVID_TUTORIAL_PROFILE``
(``cpu`` unless ``--profile`` says otherwise), ``TF_CPP_MIN_LOG_LEVEL=3`` and, unless it is
set already, ``COVID_TUTORIAL_WEIGHTS=none``: no ImageNet download, the same tensor shapes
and so the same memory.

Every 0.2 s it samples the memory of the server process and all its descendants (the kernel
and whatever the kernel starts), counting each page once, as the cgroup memory limit of a
Binder session charges it (Linux only: it reads ``/proc/PID/smaps``):

- anonymous memory (the heap: arrays, tensors) by PSS, which splits a page between the
  processes that share it; only the server's own processes share these (after a fork);
- memory-mapped files (Python, TensorFlow's libraries) once per file, at the largest resident
  size any of the processes maps.

Plain PSS would split the libraries with every other process on the machine that maps them
(another Jupyter kernel, say) and so understate what Binder charges. It also records the sum
of their RSS, which counts a shared page once per process (an upper bound). A notebook passes
when every cell runs without an error and the peak stays within Binder's 2 GB.

It writes one row per notebook into the top-level README.md between
``<!-- binder-memory:start -->`` and ``<!-- binder-memory:end -->`` (rows of notebooks not
measured this time are kept), prints each notebook's heaviest cells, and with ``--json`` saves
everything, the peak of every cell included. With no NOTEBOOK arguments every
``notebooks/NN_*.ipynb`` is measured, in order.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.markdown_blocks import Markers, has_block, markdown_table, read_block, replace_block, table_rows
from tools.measurement_text import describe_machine, format_duration

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
README_MARKERS = Markers.named("binder-memory")
BINDER_LIMIT_GB = 2.0  # mybinder.org: at most 2 GB per session, server and kernels together
KERNEL_NAME = "python3"
COLUMNS = ("notebook", "peak server+kernel", "RSS sum", "idle server", "cells that add most",
           "wall time", "within 2 GB", "measured")


@dataclass
class CellPeak:
    """The memory peak while one code cell ran; ``number`` is its ``In [N]`` in a top-to-bottom run.
    Memory is counted as ``tree_memory`` does; ``peak - start`` is what the cell added."""

    number: int
    first_line: str
    seconds: float
    start: int = 0
    peak: int = 0
    peak_rss: int = 0


@dataclass
class NotebookMemory:
    """What one notebook cost in a fresh server: memory in bytes, times in seconds."""

    notebook: str
    profile: str
    ok: bool = False
    error: str | None = None
    idle: int = 0
    idle_rss: int = 0
    peak: int = 0
    peak_rss: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    load: float = float("nan")
    cells: list[CellPeak] = field(default_factory=list)

    def heaviest_cells(self, count: int = 3) -> list[CellPeak]:
        """The cells with the highest peaks (memory held from earlier cells included)."""
        return sorted(self.cells, key=lambda c: c.peak, reverse=True)[:count]

    def growing_cells(self, count: int = 3) -> list[CellPeak]:
        """The cells that add the most memory while they run."""
        return sorted(self.cells, key=lambda c: c.peak - c.start, reverse=True)[:count]


class MeasureError(RuntimeError):
    """The server or the kernel could not be started or reached."""


# ---------------------------------------------------------------- memory


_FIELD = re.compile(rb"^(\w+):\s+(\d+) kB$", re.MULTILINE)
# a mapping's header line when it maps a file, then the first Rss and Anonymous lines after it (its own)
_FILE_MAPPING = re.compile(
    rb"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+ +(/[^\n]*)\n(?:[^\n]*\n)*?Rss: +(\d+) kB\n"
    rb"(?:[^\n]*\n)*?Anonymous: +(\d+) kB$",
    re.MULTILINE,
)


def _read_proc(pid: int, name: str) -> bytes:
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def _file_resident(pid: int) -> dict[bytes, int]:
    """Bytes of each mapped file resident in ``pid`` (its copy-on-write pages excluded: anonymous)."""
    resident: dict[bytes, int] = {}
    for path, rss_kb, anonymous_kb in _FILE_MAPPING.findall(_read_proc(pid, "smaps")):
        resident[path] = resident.get(path, 0) + (int(rss_kb) - int(anonymous_kb)) * 1024
    return resident


@dataclass
class TreeMemory:
    """One sample of a process tree, in bytes: ``anonymous + files`` counts each page once."""

    anonymous: int = 0  # sum of the processes' anonymous and shared-memory PSS
    files: int = 0  # mapped files, each once, at the largest resident size among the processes
    rss: int = 0  # sum of the processes' RSS

    @property
    def counted_once(self) -> int:
        return self.anonymous + self.files


def tree_memory(root_pid: int, cpu_seconds: dict | None = None) -> TreeMemory:
    """The memory of ``root_pid`` and all its descendants (see the module doc).

    With ``cpu_seconds`` (pid -> seconds), also records the CPU time (user + system) each
    process has used so far, so that the total survives the processes' exit."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return TreeMemory()
    sample, files = TreeMemory(), {}
    for process in processes:
        try:
            rollup = {k.decode(): int(v) * 1024 for k, v in _FIELD.findall(_read_proc(process.pid, "smaps_rollup"))}
            resident = _file_resident(process.pid)
            if cpu_seconds is not None:
                times = process.cpu_times()
                cpu_seconds[process.pid] = times.user + times.system
        except (OSError, psutil.Error):  # it exited meanwhile, or is not ours to read
            continue
        sample.anonymous += rollup["Pss_Anon"] + rollup.get("Pss_Shmem", 0)
        sample.rss += rollup["Rss"]
        for path, size in resident.items():
            files[path] = max(files.get(path, 0), size)
    sample.files = sum(files.values())
    return sample


class MemorySampler:
    """Samples ``tree_memory(pid)`` every ``interval`` seconds in a thread, with the label
    (the cell running) at that moment."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval = pid, interval
        self.label: int | None = None
        self.samples: list[tuple[int | None, TreeMemory]] = []
        self.cpu_seconds: dict[int, float] = {}
        self.loads: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.sample()
                self._stop.wait(self.interval)
        except BaseException as exc:  # raised again in the measuring thread, at __exit__
            self.error = exc

    def sample(self) -> TreeMemory:
        label = self.label
        memory = tree_memory(self.pid, self.cpu_seconds)
        self.samples.append((label, memory))
        self.loads.append(os.getloadavg()[0])
        return memory

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.error is not None:
            raise self.error

    def peak(self, label=...) -> tuple[int, int]:
        """Highest (memory counted once, RSS sum) over all samples, or over those taken with ``label``."""
        chosen = [m for lab, m in self.samples if label is ... or lab == label]
        return max((m.counted_once for m in chosen), default=0), max((m.rss for m in chosen), default=0)


# ---------------------------------------------------------------- server


def server_environment(profile: str) -> dict[str, str]:
    """The environment of the server, and so of its kernels."""
    env = dict(os.environ)
    env["COVID_TUTORIAL_PROFILE"] = profile
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.setdefault("COVID_TUTORIAL_WEIGHTS", "none")  # no download; same shapes, same memory
    # The package is importable from a checkout even before `pip install -e .`.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterServer:
    """A JupyterLab server on 127.0.0.1 serving ``root_dir``, started by ``with`` and shut
    down cleanly (kernels first, then the server) when the block ends."""

    def __init__(self, root_dir: Path, env: dict[str, str], start_timeout: float = 120):
        self.root_dir, self.env, self.start_timeout = Path(root_dir), env, start_timeout
        self.token = secrets.token_hex(24)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> JupyterServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="binder-memory-")
        env = dict(self.env, JUPYTER_RUNTIME_DIR=self._tmp.name)
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # containers often run as root; Binder does not
        self.log_path = Path(self._tmp.name) / "server.log"
        self._log = self.log_path.open("w")  # a file, not a pipe: a full pipe would block the server
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_until_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MeasureError(f"the Jupyter server exited at start-up:\n{self.log_tail()}")
            try:
                self.request("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise MeasureError(f"the Jupyter server did not answer within {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
        return json.loads(text) if text else {}

    def start_session(self, notebook: str) -> dict:
        """Open ``notebook`` (relative to the root folder) in a new kernel, as JupyterLab does."""
        return self.request("POST", "/api/sessions", {
            "path": notebook, "name": notebook, "type": "notebook", "kernel": {"name": KERNEL_NAME},
        })

    def websocket_url(self, kernel_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"

    def __exit__(self, *exc) -> None:
        import psutil

        try:
            leftovers = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            leftovers = []
        if self.process.poll() is None:
            try:
                for session in self.request("GET", "/api/sessions"):
                    self.request("DELETE", f"/api/sessions/{session['id']}")
                self.request("POST", "/api/shutdown")
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass  # the server is stopped below in any case
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        for process in leftovers:  # a kernel that outlived its server (it should not)
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        self._log.close()
        self._tmp.cleanup()


# ---------------------------------------------------------------- kernel messages


def _message(msg_type: str, content: dict, session: str) -> dict:
    return {
        "header": {
            "msg_id": uuid.uuid4().hex, "username": "binder-memory", "session": session,
            "msg_type": msg_type, "version": "5.3",
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        },
        "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": [],
    }


class KernelChannel:
    """The kernel's websocket channel (``/api/kernels/<id>/channels``) as a learner's browser uses it."""

    def __init__(self, connection):
        self.connection = connection
        self.session = uuid.uuid4().hex

    @classmethod
    async def connect(cls, server: JupyterServer, kernel_id: str) -> KernelChannel:
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        request = HTTPRequest(server.websocket_url(kernel_id), headers={"Authorization": f"token {server.token}"})
        # outputs with figures are large; the browser takes them whole too
        return cls(await websocket_connect(request, max_message_size=1 << 30))

    async def _receive(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        raw = await asyncio.wait_for(self.connection.read_message(), remaining)
        if raw is None:
            raise MeasureError("the kernel's websocket closed (did the kernel die?)")
        if isinstance(raw, bytes):  # binary frames carry buffers (widgets); not needed here
            return {}
        return json.loads(raw)

    async def wait_ready(self, timeout: float = 120) -> None:
        """Send ``kernel_info_request`` until the kernel answers it."""
        deadline = time.monotonic() + timeout
        while True:
            request = _message("kernel_info_request", {}, self.session)
            await self.connection.write_message(json.dumps(request))
            retry_at = min(deadline, time.monotonic() + 5)
            try:
                while True:
                    message = await self._receive(retry_at)
                    if (message.get("msg_type") == "kernel_info_reply"
                            and message["parent_header"].get("msg_id") == request["header"]["msg_id"]):
                        return
            except (TimeoutError, asyncio.TimeoutError):
                if time.monotonic() >= deadline:
                    raise MeasureError(f"the kernel did not answer within {timeout:.0f} s") from None

    async def execute(self, code: str, timeout: float) -> str | None:
        """Run ``code``; return None when it ran, else a one-paragraph account of its error."""
        request = _message("execute_request", {
            "code": code, "silent": False, "store_history": True, "user_expressions": {},
            "allow_stdin": False, "stop_on_error": True,
        }, self.session)
        msg_id = request["header"]["msg_id"]
        await self.connection.write_message(json.dumps(request))
        deadline = time.monotonic() + timeout
        reply, idle, error = None, False, None
        try:
            while reply is None or not idle:
                message = await self._receive(deadline)
                msg_type, content = message.get("msg_type"), message.get("content", {})
                if msg_type == "status" and content.get("execution_state") in ("dead", "restarting"):
                    return "the kernel died (out of memory?) and was restarted"
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                if msg_type == "execute_reply":
                    reply = content
                elif msg_type == "status" and content.get("execution_state") == "idle":
                    idle = True
                elif msg_type == "error":
                    error = content
        except (TimeoutError, asyncio.TimeoutError):
            return f"no reply within {timeout:.0f} s"
        if reply.get("status") == "ok":
            return None
        error = error or reply
        return f"{error.get('ename', 'error')}: {error.get('evalue', '')}"


# ---------------------------------------------------------------- one notebook


def _code_cells(path: Path) -> list[str]:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "code" and cell.source.strip()]


async def _run_cells(server: JupyterServer, kernel_id: str, cells: list[str], sampler: MemorySampler,
                     result: NotebookMemory, cell_timeout: float) -> None:
    channel = await KernelChannel.connect(server, kernel_id)
    try:
        await channel.wait_ready()
        for number, code in enumerate(cells, start=1):
            first_line = code.strip().splitlines()[0][:60]
            sampler.label = number
            start = sampler.sample().counted_once
            started = time.perf_counter()
            error = await channel.execute(code, cell_timeout)
            result.cells.append(CellPeak(number, first_line, time.perf_counter() - started, start))
            sampler.sample()  # a cell shorter than the interval still gets a sample of its own
            if error:
                result.error = f"In [{number}] ({first_line}): {error}"
                return
        sampler.label = None
    finally:
        channel.connection.close()


def measure_notebook(path: Path, notebooks_dir: Path = NOTEBOOKS_DIR, profile: str = "cpu",
                     interval: float = 0.2, cell_timeout: float = 1800, idle_seconds: float = 1.0) -> NotebookMemory:
    """Run ``path`` (a notebook inside ``notebooks_dir``) through a fresh server; see the module doc."""
    path = Path(path).resolve()
    result = NotebookMemory(path.name, profile)
    cells = _code_cells(path)
    with JupyterServer(notebooks_dir, server_environment(profile)) as server:
        with MemorySampler(server.process.pid, interval) as sampler:
            sampler.label = 0  # the server alone, before any kernel
            time.sleep(idle_seconds)
            result.idle, result.idle_rss = sampler.peak(0)
            started = time.perf_counter()
            session = server.start_session(str(path.relative_to(Path(notebooks_dir).resolve())))
            try:
                asyncio.run(_run_cells(server, session["kernel"]["id"], cells, sampler, result, cell_timeout))
            except MeasureError as exc:
                result.error = str(exc)
            result.wall_s = time.perf_counter() - started
        result.peak, result.peak_rss = sampler.peak()
        for cell in result.cells:
            cell.peak, cell.peak_rss = sampler.peak(cell.number)
        result.cpu_s = sum(sampler.cpu_seconds.values())
        if sampler.loads:
            result.load = sum(sampler.loads) / len(sampler.loads)
    result.ok = result.error is None
    return result


# ---------------------------------------------------------------- README table


def _gb(n_bytes: int) -> str:
    return f"{n_bytes / 1e9:.2f} GB"


def table_row(result: NotebookMemory, date: str) -> dict[str, str]:
    growing = ", ".join(f"In [{c.number}] {(c.peak - c.start) / 1e9:+.2f} GB" for c in result.growing_cells(2))
    return {
        "notebook": result.notebook,
        "peak server+kernel": _gb(result.peak),
        "RSS sum": _gb(result.peak_rss),
        "idle server": _gb(result.idle),
        "cells that add most": growing or "-",
        "wall time": format_duration(result.wall_s),
        "within 2 GB": "yes" if result.peak <= BINDER_LIMIT_GB * 1e9 else "NO",
        "measured": f"{date}, profile {result.profile}, {describe_machine(result.load)}",
    }


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """The rows between the README markers, by notebook."""
    if not has_block(text, README_MARKERS):
        return {}
    return {row["notebook"]: row for row in table_rows(read_block(text, README_MARKERS), COLUMNS)}


def render_table(rows: dict[str, dict[str, str]]) -> str:
    return markdown_table(COLUMNS, (rows[name] for name in sorted(rows)))


def update_readme(results: list[NotebookMemory], readme: Path = README) -> bool:
    """Write the rows of ``results`` between the markers, keeping the other notebooks' rows."""
    date = _dt.date.today().isoformat()
    text = readme.read_text(encoding="utf-8")
    if not has_block(text, README_MARKERS):
        print(f"{readme.name} has no {README_MARKERS} markers; the table is:\n")
        print(render_table({r.notebook: table_row(r, date) for r in results}))
        return False
    rows = parse_table(text)
    rows.update({r.notebook: table_row(r, date) for r in results})
    readme.write_text(replace_block(text, README_MARKERS, f"\n{render_table(rows)}\n"), encoding="utf-8")
    return True


# ---------------------------------------------------------------- command line


def notebook_paths(names: list[str], notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks named, or every ``NN_*.ipynb`` of ``notebooks_dir`` in order."""
    if not names:
        return sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    paths = []
    for name in names:
        path = Path(name) if Path(name).exists() else Path(notebooks_dir) / name
        if not path.is_file() or path.suffix != ".ipynb":
            raise SystemExit(f"error: {name}: no such notebook; give one such as notebooks/06_gradcam.ipynb")
        if Path(notebooks_dir).resolve() not in path.resolve().parents:
            raise SystemExit(f"error: {name}: not inside {notebooks_dir}; the server serves that folder only")
        paths.append(path.resolve())
    return paths


def _report(result: NotebookMemory) -> str:
    status = "ok" if result.ok else f"FAILED: {result.error}"
    lines = [
        f"  {status}: peak {_gb(result.peak)} ({_gb(result.peak_rss)} RSS sum), idle server "
        f"{_gb(result.idle)}, {format_duration(result.wall_s)} wall, {format_duration(result.cpu_s)} CPU, "
        f"load average {result.load:.1f}",
    ]
    for cell in result.heaviest_cells():
        lines.append(f"    In [{cell.number}] {_gb(cell.peak)} ({(cell.peak - cell.start) / 1e9:+.2f} GB "
                     f"during the cell), {cell.seconds:.0f} s: {cell.first_line}")
    lines.append("    largest increases: " + ", ".join(f"In [{c.number}] {(c.peak - c.start) / 1e9:+.2f} GB"
                                                      for c in result.growing_cells()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", metavar="NOTEBOOK")
    parser.add_argument("--profile", default="cpu", choices=("ci", "page", "cpu", "gpu"))
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    parser.add_argument("--cell-timeout", type=float, default=1800, help="seconds allowed per cell")
    parser.add_argument("--no-write", action="store_true", help="print the table; leave README.md alone")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save every figure, per cell too")
    args = parser.parse_args(argv)
    try:
        import jupyterlab  # noqa: F401
        import psutil  # noqa: F401
        import tornado  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"error: {exc.name} is not installed in {sys.prefix}; install the dev extra: "
                         "pip install -e '.[dev]'") from None
    rollup = Path("/proc/self/smaps_rollup")
    if not rollup.is_file() or b"Pss_Anon:" not in rollup.read_bytes():
        raise SystemExit("error: binder_memory.py needs a Linux whose /proc/PID/smaps_rollup reports Pss_Anon "
                         "(current kernels do, Binder's too); run it there")
    paths = notebook_paths(args.notebooks)
    results = []
    for path in paths:
        print(f"measuring {path.name} through a Jupyter server (profile {args.profile}) ...", flush=True)
        try:
            result = measure_notebook(path, NOTEBOOKS_DIR, args.profile, args.interval, args.cell_timeout)
        except MeasureError as exc:  # the server or kernel would not start: nothing measured
            result = NotebookMemory(path.name, args.profile, error=str(exc))
        print(_report(result), flush=True)
        results.append(result)
        if result.ok and not args.no_write and update_readme([result]):
            print(f"  row written in {README.relative_to(ROOT)}", flush=True)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    if args.no_write:
        print(render_table({r.notebook: table_row(r, _dt.date.today().isoformat()) for r in results}))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
