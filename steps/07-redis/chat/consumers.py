import json
from pprint import pprint

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer
from redis.exceptions import RedisError


class ChatConsumer(WebsocketConsumer):
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

    def connect(self):
        print('a client connected, with this scope:')
        pprint(self.scope)
        # /ws/chat/ names no room: it is the lobby.
        self.room_name = self.scope['url_route']['kwargs'].get('room_name', 'lobby')
        self.room_group_name = f'chat_{self.room_name}'
        # The layer's calls are coroutines; a sync consumer runs them through async_to_sync.
        async_to_sync(self.channel_layer.group_add)(self.room_group_name, self.channel_name)
        self.accept()
        self.accepted = True

    def disconnect(self, close_code):
        print('a client disconnected, close code', close_code)
        async_to_sync(self.channel_layer.group_discard)(self.room_group_name, self.channel_name)

    def receive(self, text_data):
        # As in the article: bad JSON, a missing "message" or a binary frame raise here.
        text_data_json = json.loads(text_data)
        message = text_data_json['message']

        # Not a reply any more: every consumer in the room, this one included, gets a chat.message event.
        async_to_sync(self.channel_layer.group_send)(
            self.room_group_name, {'type': 'chat.message', 'message': message}
        )

    def chat_message(self, event):
        self.send(text_data=json.dumps({
            'message': event['message'],
        }))
