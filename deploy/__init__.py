"""Deployment of Odyssey's Dagster instance on PostgreSQL: deploy/dagster.yaml and a local server (deploy/postgres.py)."""
