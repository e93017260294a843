"""Ingestion: the gate between untrusted raw/ and trusted archive/."""
