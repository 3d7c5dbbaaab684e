"""Audit exports: CSV files, manifest, checksums and their verification."""
