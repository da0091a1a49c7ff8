"""Forward models and reconstruction of MRI, CT and PET."""
