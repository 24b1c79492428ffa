"""Writes of the users app, one transaction each: users and profiles, logins and sessions."""
