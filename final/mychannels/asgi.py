"""
ASGI config for mychannels project.

It exposes the ASGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/asgi/
"""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mychannels.settings')
# Set Django up first, so the app registry is ready before routing imports code that uses models.
django_asgi_app = get_asgi_application()

from chat.routing import websocket_urlpatterns  # noqa: E402
from django.conf import settings  # noqa: E402

from mychannels import backpressure  # noqa: E402

# Under daphne: stop reading a socket whose consumer is behind, as uvicorn does (see mychannels/backpressure.py).
backpressure.install()

# Once per server process: which layer this process's rooms live in.
print(f'channel layer: {settings.CHANNEL_LAYER_IN_USE}', flush=True)

application = ProtocolTypeRouter({
    'http': django_asgi_app,
    # A handshake whose Origin is not one of ALLOWED_HOSTS, or that sends none, is refused with 403.
    'websocket': AllowedHostsOriginValidator(
        AuthMiddlewareStack(
            URLRouter(websocket_urlpatterns)
        )
    ),
})
