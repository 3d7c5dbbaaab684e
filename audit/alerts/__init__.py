"""Dose alerts: detection and the stored, acknowledgeable alerts."""
