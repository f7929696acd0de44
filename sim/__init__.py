"""sim: simulated patients and their wearables, with ground-truth deterioration events."""
