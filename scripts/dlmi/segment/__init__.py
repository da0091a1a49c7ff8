"""Segmentation of tissue classes and regions."""
