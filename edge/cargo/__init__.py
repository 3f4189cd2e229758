"""Cargo identity: ISO 6346 container codes, ADR orange plates, X-ray scans.

Pure code, no I/O beyond reading the shipped tables: :mod:`edge.cargo.iso6346` reads and
verifies container codes and size/type codes, :mod:`edge.cargo.adr` reads orange plates and
holds the alarm rules. See docs/cargo.md.
"""
