"""`python -m workbook run N` (`make step-N run`): serve a step, final/ or the workspace in the foreground."""

from __future__ import annotations

import os

from ..errors import WorkbookError, summarize_failure
from ..registry import get_step
from .foreground import foreground
from .listen import connect_host, given, is_busy, listen_problem, read_host, read_port, try_bind
from .ports import busy_message
from .server import Server


def retry_hint(target: str, port: int) -> str:
    """Say how to run `target` on the next port, the way the learner started it (make or python -m workbook)."""
    if os.environ.get("MAKELEVEL"):
        return f"PORT={port + 1} make {target} run"
    return f"python -m workbook run {target.removeprefix('step-')} --port {port + 1}"


def cmd_run(args) -> int:
    where = given("HOST", args.host), given("PORT", args.port)
    host, port = read_host(where[0]), read_port(where[1])

    if args.step == "workspace":
        from ..learner.workspace import workspace_target

        project, label, target = workspace_target()
    else:
        step = get_step(args.step)
        if step.number == 0:
            raise WorkbookError("step 0 is the bare startproject baseline: run step 1 or later")
        target = "final" if step.id == "final" else f"step-{step.number}"
        project, label = step, step.label
    problem = try_bind(host, port)
    if problem is not None:
        if not is_busy(problem):
            raise WorkbookError(listen_problem(problem, *where))
        raise WorkbookError(busy_message(port, target, retry_hint(target, port)))
    from .redis import check_redis_url

    check_redis_url(getattr(project, "path", project))
    from ..classroom.lan import admit, host_header

    # Listening beyond loopback: the runner admits this machine's addresses, or other machines get HTTP 400.
    admitted = admit(host, getattr(project, "path", project))
    # The final project is served the way it ships, by the daphne CLI; the steps by runserver, which reloads.
    how = args.server or ("daphne" if target == "final" else "runserver")
    server = Server(project, how=how, host=host, port=port, reload=not args.no_reload, env=admitted and admitted.env,
                    trace=args.trace)

    def up() -> list[str]:
        here = f"{host_header(connect_host(host))}:{port}"
        lines = [f"workbook: {label} is up on http://{here}/ (websocket: ws://{here}/ws/chat/). Ctrl-C stops it."]
        if admitted:
            lines += admitted.announcement(port)
        if args.trace:
            overlay = " (Django's banner says settings 'workbook.overlay': your settings, serving through the trace)"
            lines.append("workbook: tracing websocket events: `→ app` the application receives, `app →` it sends, "
                         f"`app ✘` it raised{overlay if how == 'runserver' else ''}.")
        return lines

    return foreground(server, up, stopped=f"workbook: stopped {label}.",
                      died=lambda: f"the server of {label} stopped: {summarize_failure(server.log_text())}")
