"""Thermal cameras: per-region temperatures over Modbus TCP (FLIR float map, InfiRay deci-K)."""
