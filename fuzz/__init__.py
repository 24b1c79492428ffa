"""`make fuzz`: schemathesis, every check, against a live gunicorn on PostgreSQL and Redis, as every kind of caller."""
