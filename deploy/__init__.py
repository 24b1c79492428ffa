"""Deployment files (Docker, Compose, nginx, Kubernetes); a package so that its tests import as deploy.tests."""
