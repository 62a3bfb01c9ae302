"""What the learner's checks report about a broken project: the file, the line and the hint.

That every check passes on its step's snapshot is tested in test_stages.py, under runserver and daphne.
"""

from __future__ import annotations

from workbook.doctor.hints import from_traceback, hint_for, syntax_errors


def test_a_syntax_error_is_reported_with_file_and_line(tmp_path):
    """Compiling the project names the broken file and line."""
    (tmp_path / "chat").mkdir()
    (tmp_path / "chat" / "consumers.py").write_text("import json\n\ndef connect(self)\n    pass\n")
    [problem] = syntax_errors(tmp_path)
    assert (problem.file, problem.line) == ("chat/consumers.py", 3)
    assert problem.error.startswith("SyntaxError")


def test_a_chained_traceback_points_at_the_learners_line(tmp_path):
    """A server's traceback is reduced to its root cause and the deepest frame in the project."""
    log = f'''Traceback (most recent call last):
  File "/usr/lib/python3/importlib/__init__.py", line 126, in import_module
  File "{tmp_path}/mychannels/asgi.py", line 19, in <module>
    from chat.routing import websocket_urlpatterns
ModuleNotFoundError: No module named 'chat.routing'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/venv/daphne/management/commands/runserver.py", line 31, in get_default_application
django.core.exceptions.ImproperlyConfigured: Cannot import ASGI_APPLICATION module 'mychannels.asgi'
'''
    problem = from_traceback(log, tmp_path)
    assert str(problem) == "mychannels/asgi.py, line 19: ModuleNotFoundError: No module named 'chat.routing'"
    assert "create it" in hint_for(problem.error)


def test_a_missing_websocket_entry_gets_the_protocoltyperouter_hint():
    """The log line of an unrouted scope type maps to the hint naming ProtocolTypeRouter's "websocket" entry."""
    hint = hint_for("ValueError: No application configured for scope type 'websocket'")
    assert "ProtocolTypeRouter" in hint and '"websocket"' in hint
