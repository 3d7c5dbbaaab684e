"""Dose reports from the C-arm (DICOM RDSR): reading, storing, matching to the log."""
