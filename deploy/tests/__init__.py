"""Tests of the deployment files against the code they start."""
