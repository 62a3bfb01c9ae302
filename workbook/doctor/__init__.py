"""The doctor and the pitfall lab: inspect a project or a running server, name each known failure and its fix."""
