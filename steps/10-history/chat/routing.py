from django.urls import re_path

from . import consumers

websocket_urlpatterns = [
    re_path(r'ws/chat/$', consumers.ChatConsumer.as_asgi()),
    # A room name becomes part of a group name: ASCII letters, digits, _ and - only, at most 50.
    re_path(r'ws/chat/(?P<room_name>[A-Za-z0-9_-]{1,50})/$', consumers.ChatConsumer.as_asgi()),
]
