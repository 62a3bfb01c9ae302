from django.conf import settings
from django.db import models


class Message(models.Model):
    room = models.CharField(max_length=50)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name='chat_messages')
    text = models.TextField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Joining a room reads its newest rows: one index serves that query.
        indexes = [models.Index(fields=['room', 'created'])]

    def __str__(self):
        return f'{self.room} · {self.user}: {self.text[:40]}'
