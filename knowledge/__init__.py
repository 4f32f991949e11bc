"""Madoguchi's knowledge base: entries, storage, import/export and handoff tickets."""
