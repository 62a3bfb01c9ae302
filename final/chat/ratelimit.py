"""A token bucket: how many messages one connection may send, on average and in a burst."""

import time


class TokenBucket:
    """Allow `rate` messages a second on average, and up to `burst` at once after a quiet spell."""

    def __init__(self, rate, burst, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens, self.checked = float(burst), clock()

    def take(self):
        """Spend one token and return True, or return False when the bucket is empty (rate 0: no limit)."""
        if not self.rate:
            return True
        now = self.clock()
        # The bucket refills continuously, `rate` tokens a second, and never holds more than `burst`.
        self.tokens = min(self.burst, self.tokens + (now - self.checked) * self.rate)
        self.checked = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
