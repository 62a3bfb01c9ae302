from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

# Two users to chat as, in two browsers (or a normal and a private window). Their passwords are public.
DEMO_USERS = {'alice': 'alice-password', 'bob': 'bob-password'}


class Command(BaseCommand):
    help = 'Create (or reset) the demo users alice and bob, for trying the chat on your own machine.'

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError('DEBUG is off: demo users with public passwords belong on a development machine only')
        User = get_user_model()
        if User._meta.db_table not in connection.introspection.table_names():
            raise CommandError('the database has no user table yet: run `python manage.py migrate` first')
        for username, password in DEMO_USERS.items():
            user, _ = User.objects.get_or_create(username=username)
            # A new hash would log out every browser where this user is logged in: reset only a changed password.
            if not user.check_password(password):
                user.set_password(password)
                user.save()
            self.stdout.write(f'{username} / {password}')
        self.stdout.write('Log in at /accounts/login/ with one of these.')
