"""Run in a project directory, with its settings: migrate, then print the session keys of N logged-in users.

Each session holds what django.contrib.auth.login() stores (the user's id, backend and session hash), so the
server's AuthMiddlewareStack loads the user from the database on every handshake exactly as for a browser. What
it skips is the login form itself: a PBKDF2 password check costs a few hundred milliseconds of CPU per user,
which would time the password hasher, not the chat.
"""

import json
import os
import sys

sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mychannels.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402

call_command("migrate", interactive=False, verbosity=0)
names = [f"bench{i:04d}" for i in range(int(sys.argv[1]))]
User = get_user_model()
with transaction.atomic():
    # An unusable password: these users can only ever log in through the sessions made here.
    User.objects.bulk_create([User(username=name, password=make_password(None)) for name in names],
                             ignore_conflicts=True)
    keys = []
    for user in User.objects.filter(username__in=names).order_by("username"):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
print(json.dumps(keys))
