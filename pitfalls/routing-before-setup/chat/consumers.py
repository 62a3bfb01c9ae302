import json
from pprint import pprint

from channels.generic.websocket import WebsocketConsumer
from django.contrib.auth.models import User


class ChatConsumer(WebsocketConsumer):
    def connect(self):
        print('a client connected, with this scope:')
        pprint(self.scope)
        user = self.scope['user']
        print('signed in as', user.get_username() if isinstance(user, User) else 'nobody')
        self.accept()

    def disconnect(self, close_code):
        print('a client disconnected, close code', close_code)

    def receive(self, text_data):
        # As in the article: bad JSON, a missing "message" or a binary frame raise here.
        text_data_json = json.loads(text_data)
        message = text_data_json['message']

        self.send(text_data=json.dumps({
            'message': message,
        }))
