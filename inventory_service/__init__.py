"""Pharmacies, the medication catalogue and stock: reserves, sells and releases stock for orders."""
