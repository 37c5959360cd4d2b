"""The drivers' exception tree (pygnc.drivers.errors) and the housekeeping driver registry
(pygnc.drivers.hk_registry)."""

import importlib
import inspect
import pkgutil

import pytest

import pygnc.drivers
from pygnc.device_kinds import HK_DEVICE_KINDS
from pygnc.drivers import (
    emus_bms_codec,
    gx2,
    gx2_codec,
    imu380,
    imu380_codec,
    monodrive_codec,
    opc_n3,
    opc_n3_codec,
    usb_iss,
)
from pygnc.drivers import hk_registry as reg
from pygnc.drivers.errors import CodecError, DriverError, DriverTimeout, ProtocolError
from pygnc.drivers.exchange import LinkTimeout, Transfer, run_blocking
from pygnc.drivers.hk_devices import DeviceConfigError, parse_device
from pygnc.drivers.link import LinkError, LinkLost, open_link
from pygnc.drivers.usb_id import UsbIdError

#: Exceptions of the drivers' modules that are not driver failures: a configuration refused
#: at load (pygnc.config names them), never raised by a running driver.
CONFIGURATION_ERRORS = {DeviceConfigError, UsbIdError}


def _driver_exceptions() -> set[type]:
    out = set()
    for info in pkgutil.iter_modules(pygnc.drivers.__path__):
        mod = importlib.import_module(f"pygnc.drivers.{info.name}")
        out |= {c for _, c in inspect.getmembers(mod, inspect.isclass) if issubclass(c, BaseException)}
    return {c for c in out if c.__module__.startswith("pygnc.drivers")}


def test_every_driver_exception_is_under_the_one_root():
    found = _driver_exceptions()
    assert found >= {LinkLost, LinkTimeout, imu380.FieldsRejected, opc_n3.OpcBusyTimeout, usb_iss.UsbIssError}
    assert [c for c in found - CONFIGURATION_ERRORS if not issubclass(c, DriverError)] == []


@pytest.mark.parametrize(
    "cls, base",
    [
        (imu380.Imu380Timeout, DriverTimeout),
        (gx2.Gx2Timeout, DriverTimeout),
        (LinkTimeout, DriverTimeout),
        (opc_n3.OpcBusyTimeout, DriverTimeout),
        (opc_n3_codec.OpcChecksumError, CodecError),
        (opc_n3_codec.OpcFrameError, CodecError),
        (emus_bms_codec.SentenceError, CodecError),
        (monodrive_codec.FormatError, CodecError),
        (imu380.Imu380Nak, ProtocolError),
        (imu380.FieldsRejected, ProtocolError),
        (usb_iss.UsbIssError, ProtocolError),
        (opc_n3_codec.OpcProtocolError, ProtocolError),
        (LinkLost, LinkError),
        (LinkError, DriverError),
        (imu380.Imu380NotFound, imu380.Imu380Error),
    ],
)
def test_device_classes_sit_under_their_kind(cls, base):
    assert issubclass(cls, base) and issubclass(cls, DriverError)


def test_one_codec_error_for_every_codec():
    assert gx2_codec.CodecError is imu380_codec.CodecError is monodrive_codec.CodecError is CodecError
    assert issubclass(CodecError, ValueError)  # as each codec's own was: `except ValueError` still holds


def test_a_timeout_is_a_timeout_error_and_a_driver_error():
    """A real reply timeout (nobody answers on loop://... that echoes one byte, not four):
    caught by ``except TimeoutError`` and by ``except DriverError`` alike, message intact."""

    def ask():
        return (yield Transfer(b"\x01", 4))

    link = open_link("loop://")
    try:
        for catch in (TimeoutError, DriverError, LinkError):
            with pytest.raises(catch) as e:
                run_blocking(ask(), link, reply_timeout_s=0.05, timeout_s=5.0)
            assert isinstance(e.value, LinkTimeout) and "1 of 4 reply bytes" in str(e.value)
    finally:
        link.close()
    for cls in (DriverTimeout, imu380.Imu380Timeout, gx2.Gx2Timeout, opc_n3.OpcBusyTimeout):
        try:
            raise cls("no answer in 0.5 s")
        except TimeoutError as exc:  # (an OSError too: one message argument, no errno)
            assert str(exc) == "no answer in 0.5 s" and exc.errno is None
    with pytest.raises(DriverError):
        opc_n3_codec.decode_histogram(bytes(opc_n3_codec.HISTOGRAM_SIZE))  # a CRC of 0 over zeros: refused


# -- the housekeeping registry ---------------------------------------------------------------------


def test_every_declared_kind_has_a_driver_with_the_whole_interface():
    assert set(reg.REGISTRY) == set(HK_DEVICE_KINDS)
    members = {"baudrate", "service", "poll", "next_deadline", "all_counters", "stop"}
    for kind in HK_DEVICE_KINDS:
        cls = reg.driver_class(kind)
        assert all(callable(getattr(cls, m, None)) for m in members), kind
    spec = parse_device({"name": "b", "kind": "emus_bms", "port": "loop://", "baudrate": 9600})
    assert reg.driver_class("emus_bms").baudrate(spec) == 9600


def test_registry_refuses_an_unknown_kind_clearly():
    with pytest.raises(
        ValueError, match=r"no housekeeping driver for kind 'gps_puck' \(known kinds: emus_bms, opc_n3\)"
    ):
        reg.driver_class("gps_puck")
    with pytest.raises(ValueError, match="not declared in pygnc.device_kinds"):
        reg.register("gps_puck")
    with pytest.raises(ValueError, match="has a driver already"):
        reg.register("emus_bms")
