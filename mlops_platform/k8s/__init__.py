"""Kubernetes building blocks every component shares."""
