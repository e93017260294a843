"""Sensors: new raw files drive the gate; rejections raise alerts."""
