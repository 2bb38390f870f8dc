"""Identity and trust without I/O: node keys, did:web, DCP self-issued tokens, VC/VP-JWTs, status lists.

The transport layer fetches DID documents and status lists and hands them in (``resolver``); nothing here
opens a socket.
"""
