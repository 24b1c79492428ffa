"""Direct access to the Redis behind Django's cache, for the few hot paths that need what its API lacks.

django-redis pickles values and handles keys one by one; a pipeline of counters or a ``MGET`` of hundreds
of ready-made JSON strings costs a tenth as much through the client itself. Keys still go through the
cache's ``make_key``, so they share its prefix and version, and ``cache.delete`` removes them.
"""

from django.core.cache import cache


def redis_cache_client():
    """The django-redis client wrapper of the default cache, or None when the cache is not Redis (embedded)."""
    client = getattr(cache, "client", None)
    return client if hasattr(client, "get_client") else None
