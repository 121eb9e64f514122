"""Editing labels: the document, its history and strokes, tools, the project store, review and the editing service."""
