"""GitHub I/O: the only layer that talks to the network.

``settings`` reads the environment a container action is given, ``commands``
writes workflow commands, outputs and the step summary, ``comment`` keeps
one pull-request comment per report id, ``artifacts`` uploads a workflow
artifact through the Actions artifact service.
"""
