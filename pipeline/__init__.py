"""Streaming ingestion pipeline for news web pages."""

__version__ = "0.1.0"
