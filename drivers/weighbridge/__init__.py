"""Weighbridge indicators: Toledo continuous, Yaohua/Keli XK3190, MT-SICS, Modbus."""
