import json
import os
import shutil
import time
import unittest
from contextlib import asynccontextmanager

from asgiref.sync import sync_to_async
from channels.testing import ChannelsLiveServerTestCase, WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client, TransactionTestCase, override_settings

from mychannels.asgi import application

from .consumers import MAX_MESSAGE_LENGTH, RATE_LIMITED, save_message
from .models import Message
from .ratelimit import TokenBucket

# The tests need no Redis: they use the in-memory layer even with REDIS_URL set.
IN_MEMORY = {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}}
# What a page of this site sends with its handshake: AllowedHostsOriginValidator refuses any other origin.
OWN_ORIGIN = [(b'host', b'localhost'), (b'origin', b'http://localhost')]
# Seconds to wait for a frame that should come (the default is 1): room for a busy machine, never slept through.
WAIT = 5


def session_cookie(username):
    """Create a user, log them in with Django's test client, and return their session cookie."""
    user = get_user_model().objects.create_user(username)
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def chat(room, cookie=None, origin=OWN_ORIGIN):
    """A communicator for a room, through the project's real application: origin check and AuthMiddlewareStack."""
    headers = [(b'cookie', f'{settings.SESSION_COOKIE_NAME}={cookie}'.encode())] if cookie else []
    return WebsocketCommunicator(application, f'/ws/chat/{room}/', headers=[*origin, *headers])


@asynccontextmanager
async def connected(room, cookie):
    """Connect to a room as a logged-in user; disconnect on the way out, whatever happened."""
    communicator = chat(room, cookie)
    accepted, _ = await communicator.connect(WAIT)
    try:
        assert accepted, f'{room}: the handshake was refused'
        yield communicator
    finally:
        # Skipped, the consumer is cancelled with the test's event loop: its disconnect() never runs.
        await communicator.disconnect()


async def say(communicator, text):
    """Send a message and return the first frame that comes back."""
    await communicator.send_json_to({'message': text})
    return await communicator.receive_json_from(WAIT)


# TransactionTestCase, not TestCase: AuthMiddlewareStack closes old database connections, which would end the
# transaction a TestCase holds open for the whole test. The rate limit is off here: some tests send 21 messages.
@override_settings(CHANNEL_LAYERS=IN_MEMORY, CHAT_MESSAGES_PER_SECOND=0)
class ChatConsumerTests(TransactionTestCase):

    def setUp(self):
        # Sync code, so the ORM can be called directly; an async test would await acreate() instead.
        self.alice = session_cookie('alice')
        self.bob = session_cookie('bob')

    async def test_a_message_comes_back_with_the_senders_name(self):
        async with connected('kitchen', self.alice) as kitchen:
            # The frame's "user" is a lie: the name must come from the session.
            await kitchen.send_json_to({'message': 'hello', 'user': 'mallory'})
            self.assertEqual(await kitchen.receive_json_from(WAIT), {'message': 'hello', 'user': 'alice'})

    async def test_everyone_in_a_room_hears_a_message(self):
        async with connected('kitchen', self.alice) as alice, connected('kitchen', self.bob) as bob:
            await say(alice, 'dinner is ready')
            self.assertEqual(await bob.receive_json_from(WAIT), {'message': 'dinner is ready', 'user': 'alice'})

    async def test_a_message_stays_in_its_room(self):
        async with connected('kitchen', self.alice) as kitchen, connected('garden', self.bob) as garden:
            await say(kitchen, 'only for the kitchen')
            # No sleep to prove a silence: the garden's own next frame comes first, so nothing came before it.
            self.assertEqual(await say(garden, 'in the garden'), {'message': 'in the garden', 'user': 'bob'})

    async def test_an_anonymous_socket_is_refused(self):
        for cookie in (None, 'not-a-session-key'):
            communicator = chat('kitchen', cookie)
            accepted, _ = await communicator.connect(WAIT)
            await communicator.disconnect()
            self.assertFalse(accepted, f'a socket with cookie {cookie!r} was let in')

    async def test_a_newcomer_hears_the_last_20_messages_oldest_first(self):
        async with connected('kitchen', self.alice) as alice:
            for n in range(1, 22):
                await say(alice, f'message {n}')
        async with connected('kitchen', self.bob) as bob:
            history = [await bob.receive_json_from(WAIT) for _ in range(20)]
            self.assertEqual(history, [{'message': f'message {n}', 'user': 'alice'} for n in range(2, 22)])
            # The next frame is bob's own: the history held exactly 20.
            self.assertEqual(await say(bob, 'hi'), {'message': 'hi', 'user': 'bob'})

    async def test_a_rooms_history_stays_in_the_room(self):
        async with connected('kitchen', self.alice) as kitchen:
            await say(kitchen, 'only for the kitchen')
        async with connected('garden', self.bob) as garden:
            self.assertEqual(await say(garden, 'hi'), {'message': 'hi', 'user': 'bob'})



BAD_FRAMES = {
    'not JSON': ('hello', 'not JSON'),
    'a JSON list': ('["message"]', 'JSON object'),
    'no "message"': ('{"text": "hi"}', 'missing'),
    'a null "message"': ('{"message": null}', 'null'),
    'a number as "message"': ('{"message": 42}', 'must be a string'),
    'a blank "message"': ('{"message": "   "}', 'empty'),
    'a "message" over the limit': (json.dumps({'message': 'x' * (MAX_MESSAGE_LENGTH + 1)}), 'limit'),
    'deeply nested JSON': ('[' * 100_000 + ']' * 100_000, 'not JSON'),
}


@override_settings(CHANNEL_LAYERS=IN_MEMORY, CHAT_MESSAGES_PER_SECOND=0)
class HardeningTests(TransactionTestCase):

    def setUp(self):
        self.alice = session_cookie('alice')
        self.bob = session_cookie('bob')

    async def test_every_bad_frame_gets_an_error_frame_and_the_socket_stays_open(self):
        async with connected('kitchen', self.alice) as sender, connected('kitchen', self.bob) as listener:
            for case, (frame, expected) in BAD_FRAMES.items():
                with self.subTest(case):
                    await sender.send_to(text_data=frame)
                    reply = await sender.receive_json_from(WAIT)
                    self.assertEqual(list(reply), ['error'])
                    self.assertIn(expected, reply['error'])
            await sender.send_to(bytes_data=b'{"message": "hi"}')
            self.assertIn('binary', (await sender.receive_json_from(WAIT))['error'])
            # Nothing invalid reached the room or the database: the listener's next frame is the valid message.
            await sender.send_json_to({'message': 'still here'})
            self.assertEqual(await listener.receive_json_from(WAIT), {'message': 'still here', 'user': 'alice'})
        self.assertEqual([m.text async for m in Message.objects.all()], ['still here'])

    async def test_only_the_message_text_and_the_senders_name_reach_the_room(self):
        async with connected('kitchen', self.alice) as sender, connected('kitchen', self.bob) as listener:
            await sender.send_json_to({'message': 'hi', 'type': 'chat.message', 'admin': True})
            self.assertEqual(await listener.receive_json_from(WAIT), {'message': 'hi', 'user': 'alice'})

    async def test_a_handshake_from_another_origin_is_refused_even_when_logged_in(self):
        for origin in ([(b'host', b'localhost'), (b'origin', b'http://evil.example')], [(b'host', b'localhost')]):
            with self.subTest(origin=origin):
                communicator = chat('kitchen', self.alice, origin=origin)
                accepted, _ = await communicator.connect(WAIT)
                await communicator.disconnect()
                self.assertFalse(accepted)

    async def test_a_database_connection_past_its_age_is_replaced_before_a_save(self):
        @sync_to_async
        def age_out():
            # As if CONN_MAX_AGE had passed while the socket stayed open: the next query must not use it.
            connection.ensure_connection()
            connection.close_at = time.monotonic() - 1
            return connection.connection

        # Called directly: the communicator turns close_old_connections() into a no-op while it runs a consumer.
        old = await age_out()
        await save_message('kitchen', await get_user_model().objects.aget(username='alice'), 'fresh')
        self.assertIsNot(await sync_to_async(lambda: connection.connection)(), old)
        self.assertEqual([m.text async for m in Message.objects.all()], ['fresh'])

    @override_settings(CHAT_HISTORY=False)
    async def test_with_history_off_nothing_is_saved_or_replayed(self):
        async with connected('kitchen', self.alice) as alice:
            await say(alice, 'gone with the wind')
        async with connected('kitchen', self.bob) as bob:
            self.assertEqual(await say(bob, 'hi'), {'message': 'hi', 'user': 'bob'})
        self.assertEqual(await Message.objects.acount(), 0)


@override_settings(CHANNEL_LAYERS=IN_MEMORY, CHAT_MESSAGES_PER_SECOND=1, CHAT_MESSAGE_BURST=3)
class RateLimitTests(TransactionTestCase):

    def setUp(self):
        self.alice = session_cookie('alice')
        self.bob = session_cookie('bob')

    async def test_a_socket_that_floods_is_closed_and_the_room_hears_only_its_burst(self):
        async with connected('kitchen', self.alice) as flooder, connected('kitchen', self.bob) as listener:
            for n in range(10):
                await flooder.send_json_to({'message': f'spam {n}'})
            heard = [await listener.receive_json_from(WAIT) for _ in range(3)]
            self.assertEqual([frame['message'] for frame in heard], ['spam 0', 'spam 1', 'spam 2'])
            # The flooder is closed with RATE_LIMITED (after at most the echoes of its burst); the listener stays.
            outputs = [await flooder.receive_output(WAIT)]
            while outputs[-1]['type'] != 'websocket.close':
                outputs.append(await flooder.receive_output(WAIT))
            self.assertEqual(outputs[-1], {'type': 'websocket.close', 'code': RATE_LIMITED})
            self.assertLessEqual(len(outputs), 4)
            self.assertEqual(await say(listener, 'still here'), {'message': 'still here', 'user': 'bob'})
        self.assertEqual(await Message.objects.acount(), 4)

    def test_the_bucket_allows_a_burst_then_the_rate(self):
        now = [0.0]
        bucket = TokenBucket(rate=2, burst=3, clock=lambda: now[0])
        self.assertEqual([bucket.take() for _ in range(4)], [True, True, True, False])
        now[0] += 0.5  # one token back at 2 a second
        self.assertEqual([bucket.take(), bucket.take()], [True, False])
        now[0] += 60  # a long pause refills to the burst, not beyond
        self.assertEqual([bucket.take() for _ in range(4)], [True, True, True, False])

    def test_rate_zero_means_no_limit(self):
        bucket = TokenBucket(rate=0, burst=1, clock=lambda: 0.0)
        self.assertTrue(all(bucket.take() for _ in range(1000)))

# The system Chromium, driven by Playwright (both come with `make setup`).
try:
    import playwright  # noqa: F401
except ImportError:
    CHROMIUM = None
else:
    CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
FLAGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run']


# On a laptop without a browser the test is skipped; in CI it runs, and fails.
@unittest.skipIf(CHROMIUM is None and not os.environ.get('CI'),
                 'needs Playwright and Chromium: run `make setup`, then `sudo apt-get install chromium`')
class ChatPageTests(ChannelsLiveServerTestCase):
    # The live server is a daphne in a child process: it reads the test database from its file
    # (DATABASES['default']['TEST']['NAME'] in settings.py), since an in-memory one cannot be shared.
    host = '127.0.0.1'

    def test_two_pages_in_a_room_see_each_others_messages_and_another_room_does_not(self):
        # All database work happens before Playwright starts: its event loop runs in this thread, and Django
        # refuses sync ORM calls while one does.
        self.assertIsNotNone(CHROMIUM, 'Playwright or the chromium executable is missing')
        cookies = [session_cookie('alice'), session_cookie('bob'), session_cookie('carol')]
        from playwright.sync_api import expect, sync_playwright

        # Each expect() waits up to 10 s (the default is 5) for the page to catch up, and no longer than it takes.
        expect.set_options(timeout=10_000)
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            pages = []
            for cookie, room in zip(cookies, ['kitchen', 'kitchen', 'garden']):
                context = chromium.new_context()
                context.add_cookies([{'name': settings.SESSION_COOKIE_NAME, 'value': cookie,
                                      'url': self.live_server_url}])
                page = context.new_page()
                page.goto(f'{self.live_server_url}/?room={room}')
                expect(page.locator('#state')).to_have_attribute('data-state', 'open')
                pages.append(page)
            alice, bob, carol = pages

            self.send(alice, 'hello from alice')
            expect(bob.locator('#log .received').last).to_have_text('<<< alice: hello from alice')
            self.send(bob, 'hello from bob')
            expect(alice.locator('#log .received').last).to_have_text('<<< bob: hello from bob')
            # The garden's own message is the first it receives: nothing of the kitchen's came before.
            self.send(carol, 'hello from carol')
            expect(carol.locator('#log .received')).to_have_text(['<<< carol: hello from carol'])
            chromium.close()

    def send(self, page, text):
        page.fill('#message-input', text)
        page.press('#message-input', 'Enter')
