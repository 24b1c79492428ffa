"""HTTP interface of the users app: views, serializers, permissions, URLs."""
