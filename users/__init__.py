"""The users app: identity, role profiles, sessions and tokens."""
