import json

from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.test import SimpleTestCase, override_settings
from mychannels.asgi import application

from .consumers import MAX_MESSAGE_LENGTH

OWN_ORIGIN = [(b'host', b'localhost'), (b'origin', b'http://localhost')]
IN_MEMORY = {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}}

BAD_FRAMES = {
    'not JSON': ('hello', 'not JSON'),
    'a JSON list': ('["message"]', 'JSON object'),
    'a JSON string': ('"message"', 'JSON object'),
    'no "message"': ('{"text": "hi"}', 'missing'),
    'a null "message"': ('{"message": null}', 'null'),
    'a number as "message"': ('{"message": 42}', 'must be a string'),
    'an empty "message"': ('{"message": ""}', 'empty'),
    'a blank "message"': ('{"message": "   "}', 'empty'),
    'a "message" over the limit': (json.dumps({'message': 'x' * (MAX_MESSAGE_LENGTH + 1)}), 'limit'),
    'deeply nested JSON': ('[' * 100_000 + ']' * 100_000, 'not JSON'),
}


@override_settings(CHANNEL_LAYERS=IN_MEMORY)
class ChatConsumerTests(SimpleTestCase):
    def setUp(self):
        # A fresh in-memory layer per test: each async test runs in its own event loop, and no room outlives it.
        channel_layers.backends.clear()

    async def join(self, path='/ws/chat/', headers=OWN_ORIGIN):
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect()
        self.assertTrue(connected, f'{path} refused the handshake')
        return communicator

    async def test_a_message_reaches_everyone_in_the_room_and_no_other_room(self):
        alice, bob = await self.join('/ws/chat/kitchen/'), await self.join('/ws/chat/kitchen/')
        carol = await self.join('/ws/chat/garden/')
        await alice.send_json_to({'message': 'dinner is ready'})
        self.assertEqual(await alice.receive_json_from(), {'message': 'dinner is ready'})
        self.assertEqual(await bob.receive_json_from(), {'message': 'dinner is ready'})
        self.assertTrue(await carol.receive_nothing())
        for communicator in (alice, bob, carol):
            await communicator.disconnect()

    async def test_the_address_without_a_room_is_the_lobby(self):
        plain, named = await self.join('/ws/chat/'), await self.join('/ws/chat/lobby/')
        await plain.send_json_to({'message': 'hi'})
        self.assertEqual(await named.receive_json_from(), {'message': 'hi'})
        await plain.disconnect()
        await named.disconnect()

    async def test_every_bad_frame_gets_an_error_frame_and_the_socket_stays_open(self):
        sender, listener = await self.join(), await self.join()
        for case, (frame, expected) in BAD_FRAMES.items():
            with self.subTest(case):
                await sender.send_to(text_data=frame)
                reply = await sender.receive_json_from()
                self.assertEqual(list(reply), ['error'])
                self.assertIn(expected, reply['error'])
        # Nothing invalid reached the room, and the same socket still chats.
        self.assertTrue(await listener.receive_nothing())
        await sender.send_json_to({'message': 'still here'})
        self.assertEqual(await listener.receive_json_from(), {'message': 'still here'})
        await sender.disconnect()
        await listener.disconnect()

    async def test_a_binary_frame_gets_an_error_frame(self):
        communicator = await self.join()
        await communicator.send_to(bytes_data=b'{"message": "hi"}')
        self.assertIn('binary', (await communicator.receive_json_from())['error'])
        await communicator.disconnect()

    async def test_only_the_message_text_reaches_the_room(self):
        sender, listener = await self.join(), await self.join()
        await sender.send_json_to({'message': 'hi', 'type': 'chat.message', 'admin': True})
        self.assertEqual(await listener.receive_json_from(), {'message': 'hi'})
        await sender.disconnect()
        await listener.disconnect()

    async def test_a_handshake_from_another_origin_is_refused(self):
        for origin in ([(b'origin', b'http://evil.example')], []):
            with self.subTest(origin=origin):
                headers = [(b'host', b'localhost'), *origin]
                communicator = WebsocketCommunicator(application, '/ws/chat/', headers=headers)
                connected, _ = await communicator.connect()
                self.assertFalse(connected)
                await communicator.disconnect()
