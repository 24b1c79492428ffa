"""Sibling-side library of the user service: token verification, revocation feed, service tokens, HTTP clients.

The core needs no web framework (PyJWT, cryptography, requests); the adapters for Django (``clients.django``),
DRF (``clients.drf``), Flask (``clients.flask``) and plain WSGI (``clients.wsgi``) are thin. Installable on its
own: ``pip install ./clients`` (see clients/README.md).
"""
