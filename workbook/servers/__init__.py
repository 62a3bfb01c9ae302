"""Running servers: where to listen, the guarded process, runserver/daphne/uvicorn, https, Redis, the foreground run."""
