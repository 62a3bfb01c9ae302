from django.core.management.base import BaseCommand

from chat.models import Message


class Command(BaseCommand):
    help = "Print a room's saved messages, oldest first: what the chat replays to whoever joins it."

    def add_arguments(self, parser):
        parser.add_argument('room', nargs='?', default='lobby', help='the room to read (default: lobby)')
        parser.add_argument('--last', type=int, default=20, help='how many of the newest messages (default: 20)')

    def handle(self, *args, room, last, **options):
        # A management command runs outside any event loop, so the plain, synchronous ORM is the right one here.
        newest = Message.objects.filter(room=room).select_related('user').order_by('-created', '-id')[:last]
        rows = list(reversed(newest))
        for message in rows:
            self.stdout.write(f'{message.created:%Y-%m-%d %H:%M:%S}  {message.user.username}: {message.text}')
        self.stdout.write(f'{len(rows)} message(s) in room {room!r}')
