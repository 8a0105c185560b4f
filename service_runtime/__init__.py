"""Plumbing every service shares: settings, broker wiring, store access, outbox relay, idempotent consumers."""
