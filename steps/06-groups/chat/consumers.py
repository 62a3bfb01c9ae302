import json
from pprint import pprint

from asgiref.sync import async_to_sync
from channels.generic.websocket import WebsocketConsumer


class ChatConsumer(WebsocketConsumer):
    def connect(self):
        print('a client connected, with this scope:')
        pprint(self.scope)
        # /ws/chat/ names no room: it is the lobby.
        self.room_name = self.scope['url_route']['kwargs'].get('room_name', 'lobby')
        self.room_group_name = f'chat_{self.room_name}'
        # The layer's calls are coroutines; a sync consumer runs them through async_to_sync.
        async_to_sync(self.channel_layer.group_add)(self.room_group_name, self.channel_name)
        self.accept()

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
