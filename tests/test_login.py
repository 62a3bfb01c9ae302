"""workbook.login against a tiny stand-in server: each way a login can fail reads as its own one line."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workbook.errors import WorkbookError
from workbook.login import login


def stand_in(post_answer: tuple[int, dict[str, str], str]):
    """Serve GET /accounts/login/ with a CSRF cookie, and answer its POST as given; return the server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, status: int, headers: dict[str, str], body: str) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body.encode())))
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self):
            if self.path.startswith("/accounts/login/"):
                self._answer(200, {"Set-Cookie": "csrftoken=abc; Path=/"}, "<form></form>")
            else:
                self._answer(200, {}, "<p>the page</p>")

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self._answer(*post_answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def serve_login():
    servers = []

    def start(post_answer):
        servers.append(stand_in(post_answer))
        return f"http://127.0.0.1:{servers[-1].server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_good_login_returns_the_session_cookie(serve_login):
    url = serve_login((302, {"Location": "/", "Set-Cookie": "sessionid=s3cr3t; Path=/"}, ""))
    assert login(url, "alice", "pw") == "s3cr3t"


def test_a_refused_form_is_quoted(serve_login):
    form = '<ul class="errorlist nonfield"><li>Please enter a correct username and password.</li></ul>'
    url = serve_login((200, {}, form))
    with pytest.raises(WorkbookError, match=r"alice could not log in at .* \(Please enter a correct username and "
                                            r"password\.\): run `python -m workbook users` first"):
        login(url, "alice", "pw")


def test_a_login_whose_session_ended_at_once_says_so(serve_login):
    """The POST redirects (the login went through) but no session cookie survives: the password changed."""
    url = serve_login((302, {"Location": "/"}, ""))
    with pytest.raises(WorkbookError, match=r"the login went through, then the server ended the session at "
                                            r"http://127\.0\.0\.1:\d+/: was the password reset\?"):
        login(url, "alice", "pw")


def test_an_http_error_names_its_status(serve_login):
    url = serve_login((403, {}, "CSRF verification failed"))
    with pytest.raises(WorkbookError, match=r"logging in at .* got HTTP 403$"):
        login(url, "alice", "pw")
