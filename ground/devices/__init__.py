"""Devices on a serial line: ``python -m ground simdevice`` (:mod:`ground.devices.simdevice`:
a simulated IMU380, 3DM-GX2 or monoDrive), ``python -m ground hk-sim``
(:mod:`ground.devices.housekeeping`: a simulated EMUS BMS and USB-ISS + OPC-N3) and
``python -m ground imu380`` (:mod:`ground.devices.imu380_tool`: a real IMU380's own tool).

The simulators share :mod:`~ground.devices.ports` (a pseudo-terminal or TCP port with
injectable faults) and :mod:`~ground.devices.motion` (the motion an IMU senses).
"""
