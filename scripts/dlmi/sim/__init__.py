"""The simulated study: participants and their effects, and the head anatomy."""
