"""Developer workflow: render, review and bring up the program on this machine.

``make plan``, ``make golden``, ``make local-up`` and ``make image`` run these.
"""
