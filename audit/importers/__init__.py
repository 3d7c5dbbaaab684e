"""Importers that turn files written by imaging equipment into plain Python records.

Each importer is pure parsing: it reads bytes and returns frozen dataclasses in the project's
canonical units, so the database and UI layers never see vendor encodings or DICOM objects.
"""
