"""Kafka plumbing: clients, topic admin, changelog restore and the transactional loop."""
