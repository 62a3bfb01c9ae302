"""The environment: the supported Pythons, the virtualenv built with uv, the offline wheelhouse."""
