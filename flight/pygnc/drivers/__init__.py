"""Device drivers: one module per device, each a pure codec plus a link.

* ``*_codec`` modules are pure: bytes in, fields in physical units out (units in the
  names), frames out of requests; incremental framers that resynchronise on bad bytes and
  count what they skipped.  No I/O, no clocks.
* The driver modules (:mod:`.imu380`, :mod:`.gx2`, :mod:`.monodrive`; :mod:`.emus_bms`,
  :mod:`.opc_n3` for housekeeping) own a link from :mod:`.link` (any pyserial URL -
  ``/dev/ttyUSB0``, a pseudo-terminal, ``loop://``, ``socket://host:port`` - or a UDP/TCP
  socket for monoDrive) and never block longer than the timeout they are given.  The serial
  IMUs read through one :class:`.pump.FramePump`.  Each IMU driver offers a *stream*
  (:class:`.sample.ImuStream`) that the ``imu_ingest`` task drives without blocking: its
  file descriptor sits in the task's ``zmq.Poller``.
* :mod:`.errors`: one exception tree - every driver error is a ``DriverError``; timeouts
  are ``DriverTimeout`` (also ``TimeoutError``), bad bytes ``CodecError`` (also
  ``ValueError``), refusals ``ProtocolError``.  :mod:`.hk_registry`: the housekeeping
  drivers behind one interface, by configured kind.
* :mod:`.timing` turns device timers (wrapping counters) into monotonic device time and maps
  it onto the host clock.

Protocol facts and their sources: docs/interface.md, "External IMU".
"""
