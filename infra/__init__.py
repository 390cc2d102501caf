"""Adapters to the infrastructure (Kafka, PostgreSQL, Redis), settings, the local stack and the CLI."""
