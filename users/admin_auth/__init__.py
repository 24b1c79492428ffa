"""The Django admin's ways in: its sign-in pages (password, second factor, enrolment) and "confirm it's you".

An interface like the API: every decision is a service's (``users.services.login`` completes logins,
``users.services.reauth`` and ``users.services.step_up`` own the step-up), so the admin obeys the API's lockout,
second-factor policy and audit. Django's session holds only the pending ``mfa_token`` and when its person last
authenticated (``session``).
"""
