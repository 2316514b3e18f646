"""HTX (ex-Huobi) spot API: signing, client and sandbox.

Imports nothing from the rest of the project, so it can be used and tested on its own.
"""
