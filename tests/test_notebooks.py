"""Every notebook is committed clean, runs headless on a real kernel, and never leaves a server behind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import websockets
from conftest import STARTED_GROUPS, group_alive, need

from workbook import Server, get_step, load_steps
from workbook.notebooks import jupyter
from workbook.servers.server import TIMEOUT, free_port, port_is_free

if TYPE_CHECKING:
    import nbformat

# jsonschema, which nbformat imports, builds rfc3987-syntax's grammar on import (about 1.5 CPU-s in each worker) only
# to check the "iri" format, which no notebook schema uses: without that optional import nbformat loads in 0.2 s.
sys.modules.setdefault("rfc3987_syntax", None)

pytestmark = pytest.mark.notebook

STEPS = load_steps()
EXISTING = [path for path in jupyter.notebooks() if path.exists()]
# Step notebooks start their stage's server; the start-here notebook does not.
SERVING = [path for path in EXISTING if path != jupyter.START_HERE]
# Run in the kernel after the notebook: the step's project must only ever run in its own processes.
PROJECT_MODULES = "import sys\nprint(sorted({name.split('.')[0] for name in sys.modules} & {'mychannels', 'chat'}))"


def params(paths: list[Path]) -> list:
    return [pytest.param(path, id=path.stem) for path in paths]


def read(path: Path) -> nbformat.NotebookNode:
    # Imported here, not at the top: nbformat's import takes over a second (jsonschema builds a grammar for one of
    # its formats), and every pytest process collects this module, most of them to run no notebook.
    import nbformat

    return nbformat.read(path, as_version=4)


def output_text(notebook: nbformat.NotebookNode) -> str:
    """Join everything the executed cells showed: streams, plain text, HTML and Markdown."""
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for kind in ("text/plain", "text/html", "text/markdown"):
                parts.append(out.get("data", {}).get(kind, ""))
    return "\n".join(parts)


def recorded(record: Path) -> list[dict]:
    """Read the servers the notebook's kernel started, one JSON line each."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def guards_of(kernel_pid: int) -> list[int]:
    """List the live guards (one per server) a kernel started: `python -m workbook.servers.guard KERNEL_PID -- …`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        guard = b"workbook.servers.guard"
        if guard in argv and argv[argv.index(guard) + 1:][:1] == [str(kernel_pid).encode()]:
            found.append(int(cmdline.parent.name))
    return found


def assert_gone(kernel_pid: int, servers: list[dict]) -> None:
    """Within the deadline: every recorded port is free, its process group gone, and no guard of the kernel runs."""
    deadline = time.monotonic() + TIMEOUT
    STARTED_GROUPS.extend(server["pid"] for server in servers)

    def leftovers() -> list[str]:
        busy = [f"{s['step']} on port {s['port']}" for s in servers if not port_is_free(s["port"])]
        alive = [f"process group {s['pid']}" for s in servers if os.name != "nt" and group_alive(s["pid"])]
        return busy + alive + [f"guard {pid}" for pid in guards_of(kernel_pid)]

    while leftovers():
        assert time.monotonic() < deadline, f"still running: {leftovers()}"
        time.sleep(0.05)


@contextlib.asynccontextmanager
async def kernel(path: Path, record: Path, cwd: Path = jupyter.NOTEBOOKS):
    """Start a real kernel (in notebooks/, as Jupyter does) for `path`; shut it down on the way out."""
    client = jupyter.notebook_client(path)
    env = jupyter.kernel_env(WORKBOOK_SERVER_RECORD=str(record))
    async with client.async_setup_kernel(env=env, cwd=str(cwd)):
        client.kernel_pid = client.km.provisioner.pid
        yield client


async def run_cells(client, until: str | None = None) -> None:
    """Execute the cells in order (a cell error raises), stopping after the first whose source holds `until`."""
    for index, cell in enumerate(client.nb.cells):
        await client.async_execute_cell(cell, index)
        if until and cell.cell_type == "code" and until in cell.source:
            return


@pytest.mark.parametrize("step", [pytest.param(step, id=step.id) for step in STEPS])
def test_every_step_has_its_notebook(step):
    """Each step of the registry has notebooks/NN-slug.ipynb."""
    assert step.notebook.exists(), f"{step.notebook.relative_to(jupyter.ROOT)} is missing: each step needs a notebook"


@pytest.mark.parametrize("path", params(sorted(jupyter.NOTEBOOKS.glob("*.ipynb"))))
def test_notebook_is_committed_without_outputs(path):
    """No code cell carries outputs, an execution count or timing metadata."""
    dirty = [
        index for index, cell in enumerate(read(path).cells)
        if cell.cell_type == "code"
        and (cell.outputs or cell.execution_count is not None or "execution" in cell.metadata)
    ]
    assert not dirty, f"cells {dirty} of {path.name} have outputs: clear them (Edit → Clear Outputs of All Cells)"


@pytest.mark.parametrize("path", params(SERVING))
def test_notebook_opens_with_its_title_and_ends_with_the_next_one(path):
    """The first cell is `# NN · Title`; the last links to the next step's notebook, when there is one."""
    cells = read(path).cells
    step = next(step for step in STEPS if step.notebook == path)
    assert cells[0].cell_type == "markdown"
    assert cells[0].source.startswith(f"# {step.number:02d} · {step.title}\n")
    following = [s for s in STEPS if s.number == step.number + 1]
    if following:
        assert f"({following[0].notebook.name})" in cells[-1].source


async def run_headless(path: Path, record: Path) -> list[dict]:
    """Run every cell on a real kernel and check what it showed, stopped and imported; return its servers."""
    for binary in read(path).metadata.get("workbook", {}).get("needs", []):
        need(shutil.which(binary) is not None, binary, f"install it (e.g. `sudo apt-get install {binary}`)")
    async with kernel(path, record) as client:
        await run_cells(client)
        # Checked while the kernel still runs: the notebook itself stops what it started.
        assert_gone(client.kernel_pid, recorded(record))
        from nbformat.v4 import new_code_cell

        probe = new_code_cell(PROJECT_MODULES)
        client.nb.cells.append(probe)
        await client.async_execute_cell(probe, len(client.nb.cells) - 1)
    assert probe.outputs[0]["text"].strip() == "[]", "the kernel imported the step's Django project"
    text = output_text(client.nb)
    missing = [shown for shown in client.nb.metadata.get("workbook", {}).get("shows", []) if shown not in text]
    assert not missing, f"{path.name} never showed {missing}"
    if path in SERVING:
        assert recorded(record), f"{path.name} started no server through workbook.notebooks.start"
    return recorded(record)


# The first step's notebook runs in test_the_same_notebook_twice_at_once_does_not_collide, checked as here on each of
# its two kernels: a third run of it would prove nothing more.
@pytest.mark.parametrize("path", params([path for path in EXISTING if path not in SERVING[:1]]))
async def test_notebook_runs_headless_and_stops_its_server(path, tmp_path):
    """Every cell runs without error, shows what it promises, frees its ports, and never imports the project."""
    await run_headless(path, tmp_path / "servers.jsonl")


def test_the_live_page_is_shown_as_a_link_and_a_screenshot_chromium_took_after_a_conversation():
    """nb.page() links the page and embeds a PNG Chromium took after the form's message came back."""
    from workbook import notebooks as nb
    from workbook.browser import INSTALL_HINT

    with Server(get_step(5)) as server:
        # Why not an IFrame: the step's XFrameOptionsMiddleware forbids any frame of another origin.
        with urllib.request.urlopen(server.http_url, timeout=TIMEOUT) as response:
            assert response.headers["X-Frame-Options"] == "DENY"
        shown = nb.page(server, say="hello from the test").data
    if "No screenshot:" in shown:
        need(False, "Chromium", INSTALL_HINT)
    assert f'href="{server.http_url}"' in shown
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', shown).group(1))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 600 and height >= 300


@pytest.mark.parametrize("path", params(sorted(jupyter.NOTEBOOKS.glob("*.ipynb"))))
def test_notebook_writes_its_conversations_with_websockets_itself(path):
    """No notebook talks through the workbook's client helpers; every one that talks imports websockets."""
    code = "\n".join(cell.source for cell in read(path).cells if cell.cell_type == "code")
    hidden = [name for name in ("from workbook import client", "client.", "nb.drive(", "handshake_status(")
              if name in code]
    assert not hidden, f"{path.name} hides its conversation behind {hidden}: write it with websockets in the cell"
    if "websockets.connect(" in code or path != jupyter.START_HERE:
        assert "import websockets" in code


@pytest.mark.parametrize("path", params(sorted(jupyter.NOTEBOOKS.glob("*.ipynb"))))
def test_a_cell_that_waits_with_asyncio_wait_for_catches_asyncio_timeouterror(path):
    """asyncio.wait_for raises asyncio.TimeoutError, which the built-in TimeoutError misses on Python 3.10."""
    for cell in read(path).cells:
        if cell.cell_type == "code" and "wait_for(" in cell.source:
            assert "except asyncio.TimeoutError" in cell.source, cell.source
            assert not re.search(r"except \(?TimeoutError", cell.source), cell.source


@pytest.mark.parametrize("path", params(SERVING[:1]))
@pytest.mark.parametrize("end", ["killed", "shut-down"])
async def test_a_kernel_that_ends_mid_notebook_leaves_no_server_behind(path, end, tmp_path):
    """A kernel killed, or shut down (a restart, a closed notebook), right after starting its server stops it."""
    record = tmp_path / "servers.jsonl"
    async with kernel(path, record) as client:
        await run_cells(client, until="nb.start(")
        servers = recorded(record)
        assert servers and not port_is_free(servers[0]["port"])
        if end == "killed":
            os.kill(client.kernel_pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
            assert_gone(client.kernel_pid, servers)
    assert_gone(client.kernel_pid, servers)


@pytest.mark.parametrize("path", params(SERVING[:1]))
async def test_the_same_notebook_twice_at_once_does_not_collide(path, tmp_path):
    """Two kernels running one notebook side by side each get their own server and port, and each run passes."""
    first, second = await asyncio.gather(*(run_headless(path, tmp_path / name) for name in ("1.jsonl", "2.jsonl")))
    assert first and second
    assert {s["port"] for s in first}.isdisjoint(s["port"] for s in second)


def conversation_script(path: Path) -> str:
    """Paste a notebook's cells tagged `conversation` into a script: an `async def main(url)` run by asyncio.run."""
    cells = [cell.source for cell in read(path).cells if "conversation" in cell.metadata.get("tags", [])]
    assert cells, f"{path.name} tags no cell `conversation`"
    body = "\n\n".join(textwrap.indent(cell, "    ") for cell in cells)
    head = "import asyncio\nimport json\nimport sys\n\nimport websockets\n\n\nasync def main(url):\n"
    return f"{head}{body}\n\n\nasyncio.run(main(sys.argv[1]))\n"


def test_notebook_04s_conversation_runs_as_a_plain_script_against_the_step_4_server(tmp_path):
    """Notebook 04's conversation cells, pasted into a .py with only websockets importable, talk to step 4's server."""
    script = tmp_path / "talk.py"
    script.write_text(conversation_script(get_step(4).notebook), encoding="utf-8")
    # `python -S` skips site-packages: the only package the script can import is websockets, put on PYTHONPATH.
    only = tmp_path / "only-websockets"
    only.mkdir()
    (only / "websockets").symlink_to(Path(websockets.__file__).parent, target_is_directory=True)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(only)}
    plain = [sys.executable, "-S"]
    bare = subprocess.run([*plain, "-c", "import django"], env=env, capture_output=True, text=True)
    assert bare.returncode != 0, "the plain interpreter can import django: the test proves nothing"
    with Server(get_step(4)) as server:
        result = subprocess.run([*plain, str(script), server.ws_url("/ws/chat/")], env=env, cwd=tmp_path,
                                capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-2000:]
    for line in ("<<< received {'message': 'hello, channels'}", "--- closed by the server with code 1011",
                 "<<< received {'message': 'still here'}", "--- handshake refused with HTTP 500"):
        assert line in result.stdout, f"{line!r} missing from:\n{result.stdout}"


async def test_the_first_cell_finds_the_workbook_from_the_repository_root_too(tmp_path):
    """A kernel started in the repository root (as some editors do), without PYTHONPATH, runs start-here."""
    async with kernel(jupyter.START_HERE, tmp_path / "servers.jsonl", cwd=jupyter.ROOT) as client:
        await run_cells(client)
    assert f"workbook: {jupyter.ROOT}" in output_text(client.nb)


def test_make_step_n_notebook_opens_that_stages_notebook():
    """`make step-3 notebook` runs `python -m workbook notebook 3`."""
    result = subprocess.run(["make", "-n", "step-3", "notebook"], cwd=jupyter.ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "-m workbook notebook 3" in result.stdout


def test_notebook_command_serves_the_stage_notebook_with_the_venv_kernel(tmp_path):
    """`python -m workbook notebook 3` serves 03-scope.ipynb on 127.0.0.1, its python3 kernel being this venv."""
    port = free_port()
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        lab = subprocess.Popen(
            [sys.executable, "-m", "workbook", "notebook", "3", "--no-browser", "--port", str(port)],
            cwd=jupyter.ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=os.name != "nt",
        )
    try:
        deadline = time.monotonic() + TIMEOUT * 2
        # Jupyter moves to the next port if another process took this one meanwhile: read the one it chose.
        pattern = re.compile(r"http://127\.0\.0\.1:(\d+)/lab/tree/03-scope\.ipynb\?token=(\w+)")
        while not (match := pattern.search(log.read_text(errors="replace"))):
            assert lab.poll() is None, log.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, f"no notebook URL: {log.read_text(errors='replace')[-2000:]}"
            time.sleep(0.1)
        api = f"http://127.0.0.1:{match.group(1)}/api"
        headers = {"Authorization": f"token {match.group(2)}"}
        # The URL can be printed a moment before the server accepts connections: poll until it answers.
        while True:
            try:
                with urllib.request.urlopen(urllib.request.Request(f"{api}/kernelspecs", headers=headers)) as response:
                    spec = json.load(response)["kernelspecs"]["python3"]["spec"]
                break
            except urllib.error.URLError:
                assert lab.poll() is None, log.read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, f"the API never answered: {log.read_text(errors='replace')[-2000:]}"
                time.sleep(0.1)
        assert spec["argv"][0] == sys.executable
        with urllib.request.urlopen(urllib.request.Request(f"{api}/contents/03-scope.ipynb", headers=headers)) as got:
            assert got.status == 200
    finally:
        if os.name == "nt":
            lab.terminate()
        else:
            os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(TIMEOUT)


async def test_a_line_printed_in_two_flushes_stays_one_line(tmp_path):
    """The runner's notebook client merges a cell's stream pieces, so a line the kernel flushed twice reads whole."""
    path = tmp_path / "pieces.ipynb"
    import nbformat

    cell = nbformat.v4.new_code_cell("import sys\nsys.stdout.write('half')\nsys.stdout.flush()\nprint(' and whole')")
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    async with kernel(path, tmp_path / "servers.jsonl") as client:
        await run_cells(client)
    assert [(out["output_type"], out["text"]) for out in client.nb.cells[0].outputs] == [("stream", "half and whole\n")]
