"""Flow control for daphne: stop reading a socket while its consumer has frames waiting."""

from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

# The most frames of one socket that wait for its consumer; uvicorn's --ws-max-queue is 32 too.
MAX_QUEUED = 32
# Reading resumes once the queue is down to this: one frame taken does not let a flood read another chunk.
RESUME_AT = MAX_QUEUED // 4
# How often, in seconds, a paused socket looks whether its consumer has caught up.
RECHECK = 0.01


class FlowControlledProtocol(WebSocketProtocol):
    """Daphne's websocket protocol, reading no more from a client while MAX_QUEUED of its frames wait."""

    paused = False

    def onMessage(self, payload, isBinary):
        super().onMessage(payload, isBinary)
        # Daphne puts every frame in the consumer's queue and reads on: a flood fills memory, and parsing it
        # takes the event loop from every other socket. Paused, the client's own TCP buffers fill and it waits.
        if not self.paused and self.application_queue.qsize() >= MAX_QUEUED:
            self.paused = True
            self.transport.pauseProducing()
            self.check_later()

    def resume_when_drained(self):
        if self.state == self.STATE_CLOSED:
            return
        if self.application_queue.qsize() <= RESUME_AT:
            self.paused = False
            self.transport.resumeProducing()
        else:
            self.check_later()

    def check_later(self):
        # Imported here: daphne installs its asyncio reactor before serving, and an earlier import would install
        # Twisted's default one.
        from twisted.internet import reactor

        reactor.callLater(RECHECK, self.resume_when_drained)


def install():
    """Make daphne build every websocket connection of this process with FlowControlledProtocol."""
    WebSocketFactory.protocol = FlowControlledProtocol
