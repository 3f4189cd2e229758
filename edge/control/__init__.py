"""The running agent's local control socket (``lane diag`` asks through it).

``messages`` is the wire, shared by the agent's server (``server``) and the diag client
(``edge.diag.control``); ``actions`` are what a technician may make a device do.
"""
