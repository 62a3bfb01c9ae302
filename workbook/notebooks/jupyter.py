"""Run Jupyter for the workbook: a kernel on this virtualenv, JupyterLab on notebooks/, headless runs, HTML copies."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from ..errors import WorkbookError
from ..registry import ROOT, get_step, load_steps
from ..state import STATE_DIR

NOTEBOOKS = ROOT / "notebooks"
START_HERE = NOTEBOOKS / "00-start-here.ipynb"
JUPYTER_DIR = STATE_DIR / "jupyter"
KERNEL = "python3"
# Per cell: a cell starts at most one server and talks to it, so this is generous.
CELL_TIMEOUT = float(os.environ.get("WORKBOOK_CELL_TIMEOUT", "120"))
# The commands below need the dev virtualenv (Jupyter is in the dev group).
DEV_COMMANDS = {"lab", "notebook", "notebooks-html"}


def notebooks() -> list[Path]:
    """List the notebooks in reading order: start-here, then one per step of the registry."""
    return [START_HERE, *(step.notebook for step in load_steps())]


def kernel_dir() -> str:
    """Write a `python3` kernelspec running this interpreter; return the directory to put on JUPYTER_PATH."""
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (workbook .venv)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    target = JUPYTER_DIR / "kernels" / KERNEL / "kernel.json"
    text = json.dumps(spec, indent=1)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"kernel.{os.getpid()}.tmp")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    return str(JUPYTER_DIR)


def jupyter_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """Return an environment where the `python3` kernel is this virtualenv, whatever the user installed."""
    env = dict(os.environ if env is None else env)
    # JUPYTER_PATH comes before the user's own kernelspecs, which might name another Python `python3`.
    paths = [kernel_dir(), *(p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p)]
    env["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def kernel_env(**extra: str) -> dict[str, str]:
    """Return the environment of a headless kernel: no PYTHONPATH, as in an editor."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, **extra}


def notebook_client(path: Path, timeout: float = CELL_TIMEOUT):
    """Return an nbclient NotebookClient for `path`, its kernel started in notebooks/ as Jupyter does."""
    import nbformat
    from nbclient import NotebookClient

    # nbclient looks the kernelspec up in this process.
    os.environ["JUPYTER_PATH"] = jupyter_env()["JUPYTER_PATH"]
    notebook = nbformat.read(path, as_version=4)
    # The kernel flushes a busy cell's prints in pieces, so one printed line can arrive as two stream outputs;
    # merged, each cell keeps its lines whole, as Jupyter's own page shows them.
    return NotebookClient(
        notebook, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(NOTEBOOKS)}},
        coalesce_streams=True,
    )


def execute(path: Path, **extra_env: str):
    """Execute a notebook headless and return it with its outputs; a failing cell raises CellExecutionError."""
    client = notebook_client(path)
    return client.execute(env=kernel_env(**extra_env))


def export_html(out: Path) -> int:
    """Execute every notebook and write an HTML copy of each to `out`."""
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter

    out.mkdir(parents=True, exist_ok=True)
    names = [path.stem for path in NOTEBOOKS.glob("*.ipynb")]
    exporter = HTMLExporter(template_name="lab")
    for path in notebooks():
        if not path.exists():
            print(f"workbook: {path.relative_to(ROOT)} does not exist yet, skipped", file=sys.stderr)
            continue
        try:
            executed = execute(path)
        except CellExecutionError as failed:
            last = re.sub(r"\x1b\[[0-9;]*m", "", (str(failed).strip().splitlines() or ["?"])[-1])
            raise WorkbookError(f"{path.name} stopped at a failing cell ({last}): open it with `make lab`") from None
        # Links between notebooks, in Markdown cells and Markdown outputs, lead to the HTML copies.
        for cell in executed.cells:
            texts = [cell] if cell.cell_type == "markdown" else [o.data for o in cell.get("outputs", []) if "data" in o]
            key = "source" if cell.cell_type == "markdown" else "text/markdown"
            for holder in texts:
                if key in holder:
                    for name in names:
                        holder[key] = holder[key].replace(f"({name}.ipynb)", f"({name}.html)")
        body, _ = exporter.from_notebook_node(executed)
        target = out / f"{path.stem}.html"
        target.write_text(body, encoding="utf-8")
        print(f"workbook: wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    return 0


def lab(port: int = 8888, open_browser: bool = True, path: Path | None = None) -> int:
    """Run JupyterLab on notebooks/ (opening `path` if given) until Ctrl-C; return its exit code."""
    if str(port) == (os.environ.get("PORT") or "8000").strip():
        raise WorkbookError(f"port {port} is where `make step-N run` serves: choose another, e.g. --port 8888")
    cmd = [
        sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={NOTEBOOKS}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
    ]
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers often run as root; Jupyter refuses that unless told
    if path:
        # The URL Jupyter prints (and opens) then leads straight to the notebook.
        cmd.append(f"--LabApp.default_url=/lab/tree/{path.relative_to(NOTEBOOKS).as_posix()}")
    os.chdir(NOTEBOOKS)
    if os.name != "nt":
        # Jupyter takes this process over, so Ctrl-C and signals reach it directly.
        os.execve(sys.executable, cmd, jupyter_env())
    process = subprocess.Popen(cmd, env=jupyter_env())
    while True:
        try:
            return process.wait()
        except KeyboardInterrupt:
            # Jupyter handles Ctrl-C itself (it asks, then shuts its kernels down): wait for it.
            continue


def cmd_lab(args) -> int:
    return lab(port=args.port, open_browser=not args.no_browser)


def cmd_notebook(args) -> int:
    path = get_step(args.step).notebook if args.step else START_HERE
    if not path.exists():
        raise WorkbookError(f"{path.name} does not exist yet: `make lab` lists the notebooks there are")
    return lab(port=args.port, open_browser=not args.no_browser, path=path)


def cmd_html(args) -> int:
    return export_html(Path(args.out))


# --- command line ----------------------------------------------------------------
def add_commands(sub) -> None:
    """Add `lab`, `notebook N` and `notebooks-html` to the command line (Jupyter is imported only when run)."""
    port = int(os.environ.get("JUPYTER_PORT") or 8888)
    lab = sub.add_parser("lab", help="open JupyterLab on notebooks/, with the project's .venv as kernel")
    notebook = sub.add_parser("notebook", help="open a stage's notebook in JupyterLab: `notebook 3`")
    notebook.add_argument("step", nargs="?", help="step number, e.g. 3 (the start-here notebook when left out)")
    for command, func in ((lab, cmd_lab), (notebook, cmd_notebook)):
        command.add_argument("--port", type=int, default=port, help="JupyterLab's port (default 8888)")
        command.add_argument("--no-browser", action="store_true", help="print the URL instead of opening it")
        command.set_defaults(func=func)
    html = sub.add_parser("notebooks-html", help="execute every notebook and write HTML copies for offline reading")
    html.add_argument("--out", default=str(ROOT / "build" / "notebooks"), help="where (default build/notebooks/)")
    html.set_defaults(func=cmd_html)
