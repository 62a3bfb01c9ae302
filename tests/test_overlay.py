"""The settings overlay adds what a run asks for on top of a project's own settings, and nothing else."""

from __future__ import annotations

import http.client

import pytest

from workbook import get_step
from workbook.project import overlay_env


def status_for_host(server, host: str) -> int:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": host})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("how", ["runserver", "daphne"])
def test_an_extra_host_is_admitted_and_loopback_still_is(serve, how):
    """A project served with an extra host answers that Host header and still answers 127.0.0.1."""
    step = get_step(4)
    server = serve(step, how=how, env=overlay_env(step.path, extra_hosts="wb-laptop.test"))
    assert status_for_host(server, f"wb-laptop.test:{server.port}") == 200
    assert status_for_host(server, f"127.0.0.1:{server.port}") == 200
    assert status_for_host(server, f"elsewhere.test:{server.port}") == 400


def test_without_the_overlay_a_foreign_host_header_is_refused(serve):
    """The project's own settings (startproject's empty ALLOWED_HOSTS) refuse any host but loopback."""
    server = serve(get_step(4), how="daphne")
    assert status_for_host(server, f"wb-laptop.test:{server.port}") == 400
