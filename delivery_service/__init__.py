"""The last mile: couriers, their deliveries from the pharmacy to the door, and the proof of hand-over."""
