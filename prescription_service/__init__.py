"""Prescriptions: uploaded by patients, they start the saga and follow their order's fate."""
