import json

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from .models import Message
from .ratelimit import TokenBucket

# How many of a room's newest messages someone who joins receives first.
HISTORY = 20
# The longest "message" a room accepts, in characters; a longer one gets an error frame.
MAX_MESSAGE_LENGTH = 1000
# The close code for a socket over the rate limit: 4000-4999 are the application's own (HTTP 429 is "too many").
RATE_LIMITED = 4429


def read_message(text_data):
    """Return (message, None) for a valid frame, or (None, what is wrong with it)."""
    try:
        data = json.loads(text_data)
    except (ValueError, RecursionError):
        return None, 'the frame is not JSON: send {"message": "..."}'
    if not isinstance(data, dict):
        return None, f'expected a JSON object like {{"message": "..."}}, got {type(data).__name__}'
    if 'message' not in data:
        return None, '"message" is missing: send {"message": "..."}'
    message = data['message']
    if message is None:
        return None, '"message" is null: send a string'
    if not isinstance(message, str):
        return None, f'"message" must be a string, not {type(message).__name__}'
    if not message.strip():
        return None, '"message" is empty: send some text'
    if len(message) > MAX_MESSAGE_LENGTH:
        return None, f'"message" has {len(message)} characters: the limit is {MAX_MESSAGE_LENGTH}'
    return message, None


@database_sync_to_async
def newest_messages(room):
    """Return the room's last HISTORY messages, oldest first, as (text, username) pairs."""
    newest = Message.objects.filter(room=room).select_related('user').order_by('-created', '-id')[:HISTORY]
    return [(message.text, message.user.username) for message in reversed(newest)]


@database_sync_to_async
def save_message(room, user, text):
    Message.objects.create(room=room, user=user, text=text)


class ChatConsumer(AsyncWebsocketConsumer):
    accepted = False

    async def dispatch(self, message):
        # Channels' dispatch() first runs close_old_connections() in the database thread, one thread hop per event,
        # even for the events that touch no database. Here every query runs inside database_sync_to_async, which
        # closes stale connections in its own hop, so that extra hop is skipped (FINAL.md has the measurements).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        except RedisError as error:
            # Redis is gone, so this socket can no longer hear its room. An open socket is told why before the
            # server closes it with 1011; a handshake still in progress is refused with HTTP 500.
            if self.accepted:
                frame = json.dumps({'error': f'channel layer unavailable: {error}'})
                await send({'type': 'websocket.send', 'text': frame})
            raise

    async def connect(self):
        # /ws/chat/ names no room: it is the lobby.
        self.room_name = self.scope['url_route']['kwargs'].get('room_name', 'lobby')
        self.room_group_name = f'chat_{self.room_name}'
        # AuthMiddlewareStack put the session's user in the scope. Nobody logged in: closing before accept()
        # refuses the handshake, and the client gets HTTP 403.
        self.user = self.scope['user']
        if not self.user.is_authenticated:
            await self.close()
            return
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()
        self.accepted = True
        self.bucket = TokenBucket(settings.CHAT_MESSAGES_PER_SECOND, settings.CHAT_MESSAGE_BURST)
        if not settings.CHAT_HISTORY:
            return
        for text, username in await newest_messages(self.room_name):
            await self.send_message(text, username)

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        # Every frame spends a token, valid or not. A flood is closed with RATE_LIMITED, and the consumer ends at
        # once: the frames the client has already queued are dropped, not worked through one by one.
        if not self.bucket.take():
            await self.close(code=RATE_LIMITED)
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)
            raise StopConsumer()
        # Bad input is answered, not raised: the socket stays open, and only a checked string reaches the room.
        if text_data is None:
            message, problem = None, 'binary frames are not accepted: send JSON text'
        else:
            message, problem = read_message(text_data)
        if problem:
            await self.send(text_data=json.dumps({'error': problem}))
            return
        if settings.CHAT_HISTORY:
            # Saved before it is sent: whoever joins later replays it from the database.
            await save_message(self.room_name, self.user, message)
        # The sender is whoever the session says: a "user" the client puts in the frame is never read.
        await self.channel_layer.group_send(
            self.room_group_name, {'type': 'chat.message', 'message': message, 'user': self.user.username},
        )

    async def chat_message(self, event):
        await self.send_message(event['message'], event['user'])

    async def send_message(self, message, user):
        await self.send(text_data=json.dumps({'message': message, 'user': user}))
