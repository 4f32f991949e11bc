"""Madoguchi's HTTP API and pages (FastAPI)."""
