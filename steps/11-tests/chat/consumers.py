import json
from pprint import pprint

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from redis.exceptions import RedisError

from .models import Message

# How many of a room's newest messages someone who joins receives first.
HISTORY = 20


class ChatConsumer(AsyncJsonWebsocketConsumer):
    accepted = False

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
        print('a client connected, with this scope:')
        pprint(self.scope)
        # /ws/chat/ names no room: it is the lobby.
        self.room_name = self.scope['url_route']['kwargs'].get('room_name', 'lobby')
        self.room_group_name = f'chat_{self.room_name}'
        # AuthMiddlewareStack put the session's user in the scope. Nobody logged in: closing before accept()
        # refuses the handshake, and the client gets HTTP 403.
        if not self.scope['user'].is_authenticated:
            await self.close()
            return
        # The layer's calls are coroutines: an async consumer awaits them on the server's event loop.
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()
        self.accepted = True
        # The async ORM: the query runs in a worker thread while this coroutine waits, so the event loop stays
        # free. select_related fetches each user in the same query: reading message.user later would be a
        # synchronous query, which Django refuses on the event loop (SynchronousOnlyOperation).
        newest = Message.objects.filter(room=self.room_name).select_related('user').order_by('-created', '-id')
        history = [message async for message in newest[:HISTORY]]
        for message in reversed(history):
            await self.send_json({'message': message.text, 'user': message.user.username})

    async def disconnect(self, close_code):
        print('a client disconnected, close code', close_code)
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive_json(self, content):
        # The base class has already parsed the frame: bad JSON or a binary frame raise before this runs,
        # a missing "message" raises here, and each closes the socket with 1011 as in step 07.
        message = content['message']
        # Saved before it is sent: whoever joins later replays it from the database.
        await Message.objects.acreate(room=self.room_name, user=self.scope['user'], text=message)

        # The sender is whoever the session says: a "user" the client puts in the frame is never read.
        await self.channel_layer.group_send(
            self.room_group_name,
            {'type': 'chat.message', 'message': message, 'user': self.scope['user'].username},
        )

    async def chat_message(self, event):
        await self.send_json({
            'message': event['message'],
            'user': event['user'],
        })
