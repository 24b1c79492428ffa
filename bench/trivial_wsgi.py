"""The machine's ceiling: the smallest WSGI app, served with the same gunicorn flags as the service."""

BODY = b'{"ok": true}'


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
