"""The password hasher: Argon2id with parameters from OWASP's recommended set, chosen by measurement.

Django's own Argon2 defaults (m = 100 MiB, t = 2, p = 8) make one verify cost eight lanes of CPU and 100 MiB
of memory, so a handful of simultaneous logins saturate a small machine. OWASP's Password Storage Cheat
Sheet recommends Argon2id with p = 1 and one of five equivalent memory/time pairs; the README's Security
section says which one this is and why (``make bench BENCH=login`` measures the five).

The algorithm name stays ``argon2``, so hashes made with other parameters are still recognised; Django's
``must_update`` sees their parameters differ and the next correct password re-hashes them with these
(``AbstractBaseUser.check_password``'s setter, reached through ``users.services.credentials``).
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idPasswordHasher(Argon2PasswordHasher):
    """Argon2id, m = 19 MiB, t = 2, p = 1 (OWASP's first recommended pair)."""

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
