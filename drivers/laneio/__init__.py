"""Lane I/O: loops, light curtain, barrier and traffic lights on a Modbus DI/DO module."""
