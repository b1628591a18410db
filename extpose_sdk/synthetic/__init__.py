"""Synthetic files in official formats (SMPL / MANO model files), made without licensed data."""
