"""Operator commands: what a platform engineer runs against a deployed stack (``make restore``, ``make audit``)."""
