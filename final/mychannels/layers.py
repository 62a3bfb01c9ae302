"""The Redis channel layer, with a connection pool that waits for a free connection instead of failing."""

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class QueueingRedisChannelLayer(RedisChannelLayer):
    # redis-py's default pool raises MaxConnectionsError once `max_connections` commands are in flight,
    # and every consumer sends its own commands: a surge of handshakes goes over and gets HTTP 500.
    # A blocking pool makes the surplus wait its turn (up to `timeout` seconds) on the same few connections.
    def create_pool(self, index):
        options = dict(self.hosts[index])
        return BlockingConnectionPool.from_url(options.pop('address'), **options)
