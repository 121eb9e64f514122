"""Prompt backends that need torch (SAM, SAM 2.1) and the registry that opens any backend by spec.

``registry`` is torch-free (it parses specs and says which file a model expects); ``sam`` and
``sam2`` import torch and their packages only when a backend loads.
"""
