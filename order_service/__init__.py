"""Orders: created from prescriptions, moved through the saga by stock and payment events."""
