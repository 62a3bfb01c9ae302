"""Learner mode: the workspace a learner builds a step in, and the checks that specify each step."""
