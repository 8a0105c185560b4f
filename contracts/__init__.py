"""Every message that crosses the broker: pydantic models, routing keys and versions. No logic, no I/O."""
