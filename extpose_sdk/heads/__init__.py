"""Prediction heads: context tokens of one frame -> SMPL / MANO parameters and a crop camera.

``transformer.py`` is the official HMR2.0 / HaMeR transformer decoder (one query token);
``mesh.py`` puts the parameter readout on it (``SMPLHead``, ``MANOHead``).
"""
