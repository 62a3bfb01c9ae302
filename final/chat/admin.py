from django.contrib import admin

from .models import Message


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ['created', 'room', 'user', 'text']
    list_filter = ['room']
