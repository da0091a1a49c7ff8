"""The simulated study: participants and their effects, the head anatomy, and MR contrasts synthesised from its tissue maps."""
