"""Plumbing every service shares: settings, broker wiring, store, outbox relay, idempotent consumers."""
