"""Payment methods and charges, against a simulated card processor. Never keeps a card number or CVC."""
