"""Wire-level device simulators and the scenario engine. Never imports ``edge``."""
