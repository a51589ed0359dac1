"""The municipal issuance window (窓口交付) and card personalisation in production."""
