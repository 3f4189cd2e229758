"""Radiation portal monitors: Rapiscan-style CSV lines over TCP, Aspect-style Modbus TCP."""
