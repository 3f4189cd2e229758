"""Readings -> crossings: the lane's fusion, a pure state machine (no I/O, no clock, no
threads), so a recorded lane replays through it deterministically (:mod:`edge.replay`).

Modules along the data, each with one reason to change:

- :mod:`~edge.fusion.settings`: what it is tuned by (the lane config's ``fusion:`` model);
- :mod:`~edge.fusion.model`: devices, plate observations, emissions, one open crossing;
- :mod:`~edge.fusion.lifecycle`: presence, opening and ending crossings, ticks, the
  recognition hold;
- :mod:`~edge.fusion.correlator`: the inputs (readings, plates, frames in recognition,
  cargo, X-ray scans, neighbouring lanes, device health) put on the right vehicle;
- :mod:`~edge.fusion.plates`: which vehicle a plate read belongs to, tailgating, the vote;
- :mod:`~edge.fusion.records`: the record's weight, radiation, thermal, coverage and cargo;
- :mod:`~edge.fusion.alarms`: alarm rules, pure functions of a crossing.
"""
