"""Colouring and downsampling for the canvas (numpy only, no Qt)."""
