"""Log a client in through a project's Django login form, the way a browser does, and return its session cookie."""

from __future__ import annotations

import html
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

from .errors import WorkbookError

LOGIN_PATH = "/accounts/login/"


def login(base_url: str, username: str, password: str, timeout: float = 30) -> str:
    """GET the login page for its CSRF cookie, POST the form, and return the `sessionid` the server set."""
    base = base_url.rstrip("/")
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        opener.open(base + LOGIN_PATH, timeout=timeout).read()
        csrf = next((c.value for c in jar if c.name == "csrftoken"), "")
        form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf})
        request = urllib.request.Request(base + LOGIN_PATH, data=form.encode(), headers={"Referer": base + LOGIN_PATH})
        with opener.open(request, timeout=timeout) as response:
            answer, landed = response.read().decode("utf-8", "replace"), response.geturl()
    except urllib.error.HTTPError as error:
        raise WorkbookError(f"logging in at {base}{LOGIN_PATH} got HTTP {error.code}") from None
    session = next((c.value for c in jar if c.name == "sessionid"), None)
    if session is None:
        # The form came back: quote what it says (Django's errorlist), so a wrong password reads as one.
        said = re.search(r'class="errorlist[^"]*"[^>]*>\s*<li>(.*?)</li>', answer, re.S)
        if said:
            why = html.unescape(re.sub(r"<[^>]+>", "", said.group(1))).strip()
        elif not landed.split("?")[0].endswith(LOGIN_PATH):
            # Django ends a session whose password hash changed since the login (a reset, say) on its next request.
            why = f"the login went through, then the server ended the session at {landed}: was the password reset?"
        else:
            why = "the form came back without saying why"
        raise WorkbookError(f"{username} could not log in at {base}{LOGIN_PATH} ({why}): "
                            "run `python -m workbook users` first")
    return session


def cookie_header(sessionid: str) -> dict[str, str]:
    """Return the header a browser sends with its handshake once logged in."""
    return {"Cookie": f"sessionid={sessionid}"}
